"""On-call rotas: who a playbook's ``page`` action and an SLA's escalation text. Pure but
for :func:`load_oncall`, which reads the TOML file ``[playbooks] oncall`` (shipped example:
``incident/bundled/oncall.toml``)::

    [rotas.water_on_call]
    title = "Water distribution on-call"
    people = [
      { name = "Alex Rivera", phone = "+12025550101" },
    ]

A page goes to every person of the rota.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, TypeVar

import msgspec

from incident.core.errors import ConfigError

__all__ = ["OnCall", "Person", "Rota", "load_oncall"]

T = TypeVar("T")

RotaName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class Person(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    #: E.164, as the households file's numbers.
    phone: Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{6,14}$")]

    def __repr__(self) -> str:
        # Keep phone numbers out of logs and tracebacks.
        return f"Person(name={self.name!r})"


class Rota(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    people: Annotated[tuple[Person, ...], msgspec.Meta(min_length=1)]


class OnCall(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rotas: dict[RotaName, Rota] = msgspec.field(default_factory=dict)


_AT = re.compile(r"^(?P<msg>.*) - at `(?:key` in `)?\$\.?(?P<path>[^`]*)`$", re.DOTALL)


def load_oncall(path: Path) -> OnCall:
    """Read and check an on-call file; ``ConfigError`` names the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such on-call file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    rotas = data.get("rotas")
    # Each rota on its own, so a problem names the rota (msgspec would say `rotas[...]`).
    for name, rota in rotas.items() if isinstance(rotas, dict) else ():
        _convert(rota, Rota, path, f"rotas.{name}")
    return _convert(data, OnCall, path, "")


def _convert(value: object, type_: type[T], path: Path, where: str) -> T:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as err:
        m = _AT.match(str(err))
        msg, sub = (m["msg"], m["path"]) if m else (str(err), "")
        at = ".".join(p for p in (where, sub.lstrip(".")) if p)
        raise ConfigError(f"{path}: {at}: {msg}" if at else f"{path}: {msg}") from err
