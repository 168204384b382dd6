"""Email addresses of households: one spelling per address (pure).

Addresses are personal data: no message built here contains one.
"""

from __future__ import annotations

import re

#: RFC 5321's limits: 64 characters before the @, 254 in all.
_LOCAL_MAX = 64
_TOTAL_MAX = 254
# A pragmatic subset of RFC 5322's dot-atom: what real mailboxes use; no quoted local parts,
# no IP literals, no whitespace or control characters anywhere.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class EmailError(ValueError):
    """An address that is not one; the message never repeats the address."""


def normalise_email(text: str) -> str:
    """The address with its domain lower-cased (the local part is the mailbox's own, kept
    as written); :class:`EmailError` says why one is not valid."""
    address = text.strip()
    if not address:
        raise EmailError("is empty")
    if len(address) > _TOTAL_MAX:
        raise EmailError(f"is longer than {_TOTAL_MAX} characters")
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise EmailError("is not an address (name@domain)")
    if len(local) > _LOCAL_MAX or not _LOCAL.fullmatch(local):
        raise EmailError("has a name part that is not valid")
    try:
        # International domains in their ASCII form, which every SMTP server takes.
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise EmailError("has a domain that is not valid") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise EmailError("has a domain that is not valid")
    return f"{local}@{ascii_domain}"
