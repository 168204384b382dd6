"""The household index: built once at load, queried per incident (pure, vectorised).

:func:`attach_households` gives every household its service connection: the nearest pipe
within a distance in metres. :class:`HouseholdIndex` holds the households as columns
(:class:`~incident.households.table.HouseholdTable`) with a packed grid over their points
(:class:`~incident.geo.grid.PointGrid`), so "who is inside this area" touches only the
points near the area's outline, and "who is out of water after this isolation" is one
``numpy.isin`` over the attached pipes.

A query returns a :class:`Selection` (positions into the index, which keeps the order the
households were given in); counts and the iterator for the notifier take a selection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from numpy.typing import NDArray

from incident.geo.area import Area
from incident.geo.errors import InvalidGeometry, UnknownReference
from incident.geo.grid import PointGrid
from incident.geo.network import LinkKind, Network
from incident.geo.projection import LocalMetric
from incident.geo.segments import IsolationTrace
from incident.households.model import Household
from incident.households.table import PRIORITY_ORDER, HouseholdTable, StrArray

IntArray = NDArray[np.int64]
_CHUNK = 100_000  # points per nearest-pipe query: bounds the temporary geometries


@dataclass(frozen=True, eq=False)
class Attachment:
    """Service connections: household ``i`` hangs on ``network.links[link_position[i]]``
    (-1: no pipe within reach), ``distance[i]`` metres away (NaN when none)."""

    max_distance_m: float
    link_ids: tuple[str, ...] = field(repr=False)
    link_position: NDArray[np.int32] = field(repr=False)
    distance: NDArray[np.float64] = field(repr=False)

    @property
    def pipe(self) -> tuple[str | None, ...]:
        """The pipe id of each household, None beyond reach."""
        return tuple(None if j < 0 else self.link_ids[j] for j in self.link_position.tolist())

    @property
    def distance_m(self) -> tuple[float | None, ...]:
        return tuple(None if d != d else d for d in self.distance.tolist())

    @property
    def unattached(self) -> tuple[int, ...]:
        """Positions of households with no pipe within reach (to report, never to drop)."""
        return tuple(np.flatnonzero(self.link_position < 0).tolist())


def _lonlat(households: Sequence[Household]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if isinstance(households, HouseholdTable):
        return households.lon, households.lat
    lon = np.fromiter((h.lon for h in households), np.float64, len(households))
    lat = np.fromiter((h.lat for h in households), np.float64, len(households))
    return lon, lat


def attach_households(
    network: Network, households: Sequence[Household], max_distance_m: float = 100.0
) -> Attachment:
    """Attach each household to its nearest pipe (not pump or valve) within ``max_distance_m``."""
    if not max_distance_m > 0:
        raise InvalidGeometry("the service connection distance must be more than 0 m", code="bad_distance")
    link_ids = tuple(k.id for k in network.links)
    pipes = [i for i, k in enumerate(network.links) if k.kind is LinkKind.pipe]
    n = len(households)
    position = np.full(n, -1, np.int32)
    distance = np.full(n, np.nan, np.float64)
    if not pipes or not n:
        return Attachment(max_distance_m, link_ids, position, distance)
    lon, lat = _lonlat(households)
    paths = [network.links[i].path for i in pipes]
    path_lonlat = np.array([p for path in paths for p in path], dtype=np.float64)
    which_pipe = np.repeat(np.arange(len(pipes)), [len(path) for path in paths])
    (lon0, lat0), (lon1, lat1) = path_lonlat.min(axis=0), path_lonlat.max(axis=0)
    local = LocalMetric((lon0 + lon1) / 2, (lat0 + lat1) / 2)
    lines = np.asarray(shapely.linestrings(local.xy(path_lonlat), indices=which_pipe), dtype=object)
    tree = shapely.STRtree(lines)
    pipe_link = np.array(pipes, np.int32)
    for begin in range(0, n, _CHUNK):
        chunk = np.column_stack([lon[begin : begin + _CHUNK], lat[begin : begin + _CHUNK]])
        points = shapely.points(local.xy(chunk))
        (where, which), dist = tree.query_nearest(
            points, max_distance=max_distance_m, return_distance=True, all_matches=False
        )
        position[begin + where] = pipe_link[which]
        distance[begin + where] = dist
    return Attachment(max_distance_m, link_ids, position, distance)


@dataclass(frozen=True, slots=True)
class Selection:
    """Households picked by a query: sorted positions into a :class:`HouseholdIndex`."""

    positions: IntArray

    def __len__(self) -> int:
        return len(self.positions)

    def __or__(self, other: Selection) -> Selection:
        # The first part of every area is added to nothing: a sort of a million positions saved.
        if not len(self.positions):
            return other
        if not len(other.positions):
            return self
        return Selection(np.union1d(self.positions, other.positions))

    def __sub__(self, other: Selection) -> Selection:
        return Selection(np.setdiff1d(self.positions, other.positions, assume_unique=True))


class AccountIndex(Mapping[str, int]):
    """Position by account id, by binary search over the ids sorted once (no dict of a
    million strings)."""

    def __init__(self, account_id: StrArray) -> None:
        self._ids = account_id
        self._order: IntArray | None = None
        self._sorted: StrArray | None = None

    def _ready(self) -> tuple[IntArray, StrArray]:
        if self._order is None or self._sorted is None:
            self._order = np.argsort(self._ids, kind="stable").astype(np.int64)
            self._sorted = self._ids[self._order]
        return self._order, self._sorted

    def __getitem__(self, account_id: str) -> int:
        order, ids = self._ready()
        at = int(np.searchsorted(ids, np.array([account_id], dtype=ids.dtype))[0])
        if at < len(ids) and ids[at] == account_id:
            return int(order[at])
        raise KeyError(account_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True, eq=False)
class HouseholdIndex:
    households: HouseholdTable
    grid: PointGrid = field(repr=False)
    by_account: Mapping[str, int] = field(repr=False)
    #: Position in ``network.links`` of each household's pipe, -1 when unattached.
    pipe_position: NDArray[np.int32] = field(repr=False)
    network: Network | None = field(repr=False)

    @property
    def lon(self) -> NDArray[np.float64]:
        return self.households.lon

    @property
    def lat(self) -> NDArray[np.float64]:
        return self.households.lat

    @property
    def priority_rank(self) -> NDArray[np.int8]:
        """Rank in :data:`PRIORITY_ORDER` per household."""
        return self.households.priority_rank

    @property
    def languages(self) -> tuple[str, ...]:
        return self.households.languages

    @property
    def language_code(self) -> NDArray[np.int16]:
        return self.households.language_code

    @classmethod
    def build(
        cls,
        households: Iterable[Household],
        network: Network | None = None,
        attachment: Attachment | None = None,
    ) -> HouseholdIndex:
        table = HouseholdTable.from_households(households)
        n = len(table)
        pipe_position = np.full(n, -1, np.int32)
        if attachment is not None:
            if network is None:
                raise ValueError("an attachment needs the network it was made for")
            if len(attachment.link_position) != n:
                raise ValueError("the attachment is for another list of households")
            if attachment.link_ids != tuple(k.id for k in network.links):
                raise ValueError("the attachment is for another network")
            pipe_position = attachment.link_position
        return cls(
            households=table,
            grid=PointGrid.build(table.lon, table.lat),
            by_account=AccountIndex(table.account_id),
            pipe_position=pipe_position,
            network=network,
        )

    def __len__(self) -> int:
        return len(self.households)

    @cached_property
    def by_link(self) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
        """Households grouped by their pipe, for isolations (made on first use, once): the
        positions ordered by pipe, and where the run of each link position starts (the
        unattached, -1, come first)."""
        order = np.argsort(self.pipe_position, kind="stable").astype(np.int32)
        n_links = len(self.network.links) if self.network is not None else 0
        starts = np.searchsorted(self.pipe_position[order], np.arange(n_links + 1)).astype(np.int64)
        return order, starts

    @cached_property
    def unattached(self) -> Selection:
        """Households with no pipe within reach (counted by area in an isolation)."""
        order, starts = self.by_link
        return Selection(np.sort(order[: starts[0]]).astype(np.int64))

    def all(self) -> Selection:
        return Selection(np.arange(len(self.households), dtype=np.int64))


def households_in_area(index: HouseholdIndex, area: Area) -> Selection:
    """Households whose point lies in the area, its boundary included (never leave out a
    house drawn on the line)."""
    return Selection(index.grid.query(area.geometry))


def households_in_area_among(index: HouseholdIndex, area: Area, among: Selection) -> Selection:
    """The households of ``among`` inside the area: a direct test, for small selections."""
    at = among.positions
    shapely.prepare(area.geometry)
    return Selection(at[shapely.intersects_xy(area.geometry, index.lon[at], index.lat[at])])


def households_on_links(index: HouseholdIndex, links: Iterable[str]) -> Selection:
    """Households whose service connection is one of ``links``."""
    if index.network is None:
        raise UnknownReference("households were indexed without a network", code="no_network")
    known = index.network.link_index
    links = list(links)
    unknown = [k for k in links if k not in known]
    if unknown:
        raise UnknownReference(
            f"link(s) not in the network: {', '.join(sorted(unknown)[:5])}", code="unknown_pipe"
        )
    wanted = np.unique(np.fromiter((known[k] for k in links), np.int64, len(links)))
    # The runs of the wanted links in the households ordered by pipe: work in proportion to
    # the households found, not to all of them.
    order, starts = index.by_link
    begin, end = starts[wanted], starts[wanted + 1]
    lengths = end - begin
    skip = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths)
    at = np.arange(int(lengths.sum()), dtype=np.int64) + skip
    return Selection(np.sort(order[at]).astype(np.int64))


def households_affected(index: HouseholdIndex, trace: IsolationTrace) -> Selection:
    """Households on a pipe that the isolation cuts out or leaves without a source."""
    return households_on_links(index, trace.affected_links)


def count_by_priority(index: HouseholdIndex, selection: Selection) -> dict[str, int]:
    """Counts per priority; households with none are under ``"none"``. Every key is present."""
    counts = np.bincount(index.priority_rank[selection.positions], minlength=len(PRIORITY_ORDER))
    return {(p.value if p else "none"): int(c) for p, c in zip(PRIORITY_ORDER, counts.tolist(), strict=True)}


def count_by_language(index: HouseholdIndex, selection: Selection) -> dict[str, int]:
    """Counts per language tag, largest first."""
    counts = np.bincount(index.language_code[selection.positions], minlength=len(index.languages))
    pairs = Counter({index.languages[i]: int(c) for i, c in enumerate(counts.tolist()) if c})
    return dict(pairs.most_common())


def iter_households(index: HouseholdIndex, selection: Selection) -> Iterator[Household]:
    """The selected households, highest priority first, file order within a priority."""
    positions = selection.positions
    order = np.argsort(index.priority_rank[positions], kind="stable")
    yield from index.households.iter_rows(positions[order])
