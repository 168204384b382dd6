"""Re-importing a households file: update by ``account_id``, never duplicate (pure).

:func:`merge_households` takes the households held now and the rows of a new file and
returns the merged set with what changed, for the store to persist. Vectorised over
columns (:class:`HouseholdTable`), so a million-row re-import takes seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from incident.geo.rows import RejectedRow
from incident.households.model import Household
from incident.households.table import SELF_ENROLLED, HouseholdTable, HouseholdTableBuilder

_COMPARED = (
    "lon", "lat", "address", "sms", "voice", "app_token", "priority_rank", "opt_out_bits", "email",
    "need_bits", "flags",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class HouseholdMerge:
    """The merged households (existing order, then new accounts in file order) and what changed."""

    households: HouseholdTable
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: int
    #: Accounts missing from the new file and dropped (only with ``remove_missing``).
    removed: tuple[str, ...]
    rejected: tuple[RejectedRow, ...]

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "rejected": len(self.rejected),
        }


def merge_households(
    existing: Sequence[Household],
    rows: Iterable[Household | RejectedRow],
    *,
    remove_missing: bool = False,
) -> HouseholdMerge:
    """Merge a new file's ``rows`` into ``existing`` by ``account_id``.

    A new account is added; a known one is replaced by the new row when any field differs
    (updated) and kept otherwise (unchanged). Accounts the file does not mention are kept,
    or dropped with ``remove_missing`` (a full re-import). A self-enrolled household is
    never replaced by a file row (it counts as unchanged) nor dropped. Rejected rows are passed through.
    An account id twice among the new rows is a caller error (``ValueError``): the file
    readers already reject the later one.
    """
    old = HouseholdTable.from_households(existing)
    builder = HouseholdTableBuilder()
    rejected: list[RejectedRow] = []
    for row in rows:
        if isinstance(row, RejectedRow):
            rejected.append(row)
        else:
            builder.add(row)
    new = builder.build()
    order = np.argsort(new.account_id, kind="stable")
    ids = new.account_id[order]
    twice = ids[1:] == ids[:-1]
    if twice.any():
        raise ValueError(f"account id {ids[1:][twice][0]!r} appears twice among the new rows")
    old_order = np.argsort(old.account_id, kind="stable")
    old_ids = old.account_id[old_order]
    # For each new row: the old position with the same id, or -1.
    at = np.searchsorted(old_ids, new.account_id) if len(old_ids) else np.zeros(len(new), np.int64)
    at = np.minimum(at, max(len(old_ids) - 1, 0))
    known = (old_ids[at] == new.account_id) if len(old_ids) else np.zeros(len(new), np.bool_)
    old_pos = np.where(known, old_order[at] if len(old_ids) else 0, -1)

    matched_new = np.flatnonzero(known)
    matched_old = old_pos[matched_new]
    same = np.ones(len(matched_new), np.bool_)
    for name in _COMPARED:
        same &= getattr(old, name)[matched_old] == getattr(new, name)[matched_new]
    same &= (
        np.array(old.languages, dtype=object)[old.language_code[matched_old]]
        == np.array(new.languages, dtype=object)[new.language_code[matched_new]]
    )
    # A self-enrolled household is the resident's own: a file row never replaces it.
    old_self = (old.flags & SELF_ENROLLED) != 0
    same |= old_self[matched_old] & ((new.flags[matched_new] & SELF_ENROLLED) == 0)

    mentioned = np.zeros(len(old), np.bool_)
    mentioned[matched_old] = True
    keep_old = np.flatnonzero(mentioned | (not remove_missing) | old_self)
    # Old rows stay in place, updated ones take the new row's values; new accounts follow.
    replace = np.full(len(old), -1, np.int64)
    replace[matched_old[~same]] = matched_new[~same]
    from_old = keep_old[replace[keep_old] < 0]
    pieces = [old.take(from_old), new.take(replace[keep_old][replace[keep_old] >= 0])]
    position = np.concatenate([keep_old[replace[keep_old] < 0], keep_old[replace[keep_old] >= 0]])
    merged = HouseholdTable.concat(pieces)
    merged = merged.take(np.argsort(position, kind="stable"))
    added = np.flatnonzero(~known)
    merged = HouseholdTable.concat([merged, new.take(added)])
    removed = np.flatnonzero(~mentioned & ~old_self) if remove_missing else np.empty(0, np.int64)
    return HouseholdMerge(
        households=merged,
        added=tuple(new.account_id[added].tolist()),
        updated=tuple(new.account_id[matched_new[~same]].tolist()),
        unchanged=int(same.sum()),
        removed=tuple(old.account_id[removed].tolist()),
        rejected=tuple(rejected),
    )
