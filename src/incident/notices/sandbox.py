"""The Jinja2 sandbox for operator-edited notice templates. Pure.

Operators edit templates, so a template is untrusted code. Jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` stops attribute tricks but not
resource bombs (``{{ 'a' * 10**8 }}``, nested loops, a macro that doubles its argument), so:

* only a small set of syntax is allowed (:func:`policy_violations`): output, ``if``,
  expressions, a few filters. No ``for``, ``set``, ``with``, macros, calls, includes or
  imports: a notice is a paragraph, not a program, and without loops or variables no
  value can grow beyond a bounded multiple of the template's own size;
* ``*``, ``**`` and ``%`` are intercepted (``intercepted_binops``): repeating a string
  or list beyond ``max_chars`` and huge powers raise :class:`~jinja2.exceptions.SecurityError`,
  and ``%`` formatting of strings is refused;
* there are no globals (no ``range``, ``lipsum``, ``namespace``), and ``replace`` checks
  the size of its result;
* the renderer caps the size of the output (:mod:`incident.notices.templates`).

``StrictUndefined``: a misspelt variable is an error, never an empty string. Autoescape is
off: SMS and push are plain text, and the voice channel escapes for TwiML itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ALLOWED_FILTERS", "MAX_POWER_BITS", "NoticeSandbox", "policy_violations"]

#: Largest integer (in bits) that ``*`` and ``**`` may build.
MAX_POWER_BITS = 4096

ALLOWED_FILTERS = frozenset(
    {"capitalize", "default", "d", "first", "last", "length", "lower", "replace", "title", "trim",
     "truncate", "upper"}
)  # fmt: skip

_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Const, nodes.Name,
    nodes.CondExpr, nodes.Concat, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Add, nodes.Sub, nodes.Mul,
    nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.Getattr, nodes.Getitem, nodes.Slice,
    nodes.Tuple, nodes.List, nodes.Keyword,
)  # fmt: skip

_WHAT = {
    nodes.For: "loops ({% for %})",
    nodes.Assign: "variables ({% set %})",
    nodes.AssignBlock: "variables ({% set %})",
    nodes.With: "{% with %}",
    nodes.Macro: "macros",
    nodes.CallBlock: "{% call %}",
    nodes.Call: "calls",
    nodes.FilterBlock: "{% filter %} blocks",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
}


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def policy_violations(tree: nodes.Template) -> list[tuple[int, str]]:
    """``(line, reason)`` for each construct a notice template may not use, in source order."""
    found: list[tuple[int, str]] = []
    for node in _walk(tree):
        line = getattr(node, "lineno", 0) or 1
        if not isinstance(node, _ALLOWED_NODES):
            what = next((text for kind, text in _WHAT.items() if isinstance(node, kind)), None)
            found.append((line, f"{what or type(node).__name__} not allowed in notice templates"))
        elif isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            allowed = ", ".join(sorted(ALLOWED_FILTERS))
            found.append((line, f"filter {node.name!r} not allowed in notice templates (allowed: {allowed})"))
    return found


def _bits(value: int) -> int:
    return abs(value).bit_length()


class NoticeSandbox(ImmutableSandboxedEnvironment):
    """The environment every notice template is compiled in (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *, max_chars: int) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
            cache_size=0,
        )
        self.max_chars = max_chars
        self.globals.clear()
        self.filters = {name: self.filters[name] for name in ALLOWED_FILTERS}
        self.filters["replace"] = self._replace

    def _replace(self, value: str, old: str, new: str, count: int | None = None) -> str:
        text, old, new = str(value), str(old), str(new)
        times = text.count(old) if old else len(text) + 1
        if count is not None:
            times = min(times, count)
        if len(text) + times * (len(new) - len(old)) > self.max_chars:
            raise SecurityError(f"replace would build more than {self.max_chars} characters")
        return text.replace(old, new) if count is None else text.replace(old, new, count)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            self._check_repeat(left, right)
            self._check_repeat(right, left)
            if _is_int(left) and _is_int(right) and _bits(left) + _bits(right) > MAX_POWER_BITS:
                raise SecurityError(f"'*' would build a number over {MAX_POWER_BITS} bits")
        elif operator_ == "**":
            if not (_is_number(left) and _is_number(right)):
                raise SecurityError("'**' works on numbers only in notice templates")
            huge = (
                _is_int(left) and _is_int(right) and right > 0 and (_bits(left) - 1) * right > MAX_POWER_BITS
            )
            if huge:
                raise SecurityError(f"'**' would build a number over {MAX_POWER_BITS} bits")
        elif operator_ == "%" and isinstance(left, str | bytes):
            raise SecurityError("'%' string formatting is not allowed in notice templates")
        return _BINOPS[operator_](left, right)

    def _check_repeat(self, sequence: Any, times: Any) -> None:
        if isinstance(sequence, str | bytes | list | tuple) and _is_int(times):
            size = len(sequence) * times
            if size > self.max_chars:
                raise SecurityError(f"'*' would repeat to {size} characters (the limit is {self.max_chars})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow, "%": operator.mod}
