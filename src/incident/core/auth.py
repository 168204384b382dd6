"""Bearer tokens with a role, kept hashed in a TOML file (``[auth] tokens_file``).

The file holds ``[[tokens]]`` tables of ``name``, ``role`` and ``token_sha256``; the plain
token is shown once, when it is made, and never stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

from incident.core.domain import Role
from incident.core.errors import ConfigError, InvalidInput

TokenName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class TokenEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: TokenName
    role: Role
    token_sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class TokensFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tokens: list[TokenEntry] = msgspec.field(default_factory=list)


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the token's name (the actor in timeline events) and role."""

    name: str
    role: Role


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens(path: Path) -> TokensFile:
    """The tokens in ``path``; a missing file has none."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return TokensFile()
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    try:
        tokens = msgspec.convert(raw, TokensFile)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{path}: {err}") from err
    names = [t.name for t in tokens.tokens]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: token names must be unique")
    return tokens


class TokenRegistry:
    """Looks a presented token up by its hash."""

    def __init__(self, tokens: TokensFile) -> None:
        self._by_digest = {t.token_sha256: Principal(t.name, t.role) for t in tokens.tokens}

    def replace(self, tokens: TokensFile) -> None:
        """Put ``tokens`` in force at once (one assignment: no request sees half of them)."""
        self._by_digest = {t.token_sha256: Principal(t.name, t.role) for t in tokens.tokens}

    def __len__(self) -> int:
        return len(self._by_digest)

    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self._by_digest.values())

    def role_of(self, name: str) -> Role | None:
        """The role of the person named ``name``; None when nobody of that name has a token."""
        return next((p.role for p in self._by_digest.values() if p.name == name), None)

    def authenticate(self, token: str) -> Principal | None:
        # Comparing digests, not tokens: a lookup's timing reveals nothing usable.
        return self._by_digest.get(token_digest(token))


def _render(tokens: TokensFile) -> str:
    lines = ["# Bearer tokens of the incident service; add one with `incident tokens add`.", ""]
    for t in tokens.tokens:
        lines += [
            "[[tokens]]",
            f"name = {json.dumps(t.name)}",
            f"role = {json.dumps(t.role.value)}",
            f"token_sha256 = {json.dumps(t.token_sha256)}",
            "",
        ]
    return "\n".join(lines)


def add_token(path: Path, name: str, role: Role, *, replace: bool = False) -> str:
    """Append a new token to ``path`` and return it in plain text (shown once)."""
    if not _NAME.match(name):
        raise InvalidInput(f"token name {name!r}: use letters, digits and . _ @ - (at most 64)")
    current = read_tokens(path)
    others = [t for t in current.tokens if t.name != name]
    if len(others) != len(current.tokens) and not replace:
        raise InvalidInput(f"a token named {name!r} exists already (use --replace to issue a new one)")
    token = secrets.token_urlsafe(32)
    entry = TokenEntry(name=name, role=role, token_sha256=token_digest(token))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(_render(TokensFile(tokens=[*others, entry])), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return token
