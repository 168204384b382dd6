"""What the service exports (read from its source), and which metrics a PromQL expression
selects (a small scanner, enough for the expressions in deploy/)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

_METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary"}
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
#: Labels every scraped series has from its target, not from the service.
TARGET_LABELS = frozenset({"job", "instance", "role", "namespace", "pod", "service", "container", "endpoint"})
#: Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up": frozenset[str]()}


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # Counter | Gauge | Histogram | Summary
    labels: tuple[str, ...]
    where: str


@dataclass
class Exported:
    families: dict[str, Family] = field(default_factory=dict)
    #: Every string constant in the source: label values come from these (or from numbers).
    strings: set[str] = field(default_factory=set)

    def series(self) -> dict[str, frozenset[str]]:
        """Each name on /metrics, with the labels it may carry."""
        out: dict[str, frozenset[str]] = dict(PROMETHEUS_SERIES)
        for f in self.families.values():
            labels = frozenset(f.labels)
            if f.kind == "Counter":
                out[f"{f.name}_total"] = labels
                out[f"{f.name}_created"] = labels
            elif f.kind == "Gauge":
                out[f.name] = labels
            else:
                out[f"{f.name}_bucket" if f.kind == "Histogram" else f.name] = labels | {
                    "le" if f.kind == "Histogram" else "quantile"
                }
                for suffix in ("_count", "_sum", "_created"):
                    out[f"{f.name}{suffix}"] = labels
        return out


def _str_list(node: ast.expr) -> tuple[str, ...] | None:
    if not isinstance(node, ast.List | ast.Tuple):
        return None
    values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return tuple(values) if len(values) == len(node.elts) else None


def exported(src: Path) -> Exported:
    """Every prometheus_client metric made in ``src`` (a call of Counter, Gauge, Histogram or
    Summary whose first argument is a literal metric name and second its help text)."""
    out = Exported()
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.strings.add(node.value)
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            cls = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            name, doc = node.args[0], node.args[1]
            if cls not in _METRIC_CLASSES or not isinstance(name, ast.Constant):
                continue
            if not (
                isinstance(name.value, str)
                and _NAME.match(name.value)
                and isinstance(doc, ast.Constant | ast.BinOp | ast.JoinedStr)
            ):
                continue
            labels: tuple[str, ...] = ()
            if len(node.args) >= 3:
                labels = _str_list(node.args[2]) or ()
            for kw in node.keywords:
                if kw.arg == "labelnames":
                    labels = _str_list(kw.value) or ()
            base = name.value.removesuffix("_total") if cls == "Counter" else name.value
            where = f"{path.relative_to(src.parent)}:{node.lineno}"
            assert base not in out.families, f"{base} made twice: {out.families[base].where} and {where}"
            out.families[base] = Family(base, cls, labels, where)
    return out


@dataclass(frozen=True)
class Selector:
    metric: str
    #: (label, operator, value)
    matchers: tuple[tuple[str, str, str], ...]


_AGGREGATIONS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ]
)
_KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
    ]
)
_GROUPING = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right"])
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:\d+(?:\.\d+)?(?:ms|[smhdwy])?)+|0x[0-9a-fA-F]+|\.\d+)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<braces>\{[^}]*\})
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _matchers(braces: str) -> tuple[tuple[str, str, str], ...]:
    body = braces[1:-1]
    found = []
    pos = 0
    while pos < len(body.rstrip()):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise ValueError(f"cannot read label matchers {braces!r}")
        found.append((m[1], m[2], m[3]))
        pos = m.end()
    return tuple(found)


def selectors(expr: str) -> list[Selector]:
    """The metric selectors of a PromQL expression (Grafana's $variables read as durations)."""
    expr = re.sub(r"\$__\w+|\$\{\w+\}|\$\w+", "5m", expr)
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"]
    out: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in _GROUPING and after[1] == "(":
            depth, i = 0, i + 1  # skip the label list
            while i < len(tokens):
                depth += {"(": 1, ")": -1}.get(tokens[i][1], 0)
                i += 1
                if depth == 0:
                    break
            continue
        if kind == "ident" and text not in _KEYWORDS and text not in _AGGREGATIONS and after[1] != "(":
            matchers = _matchers(after[1]) if after[0] == "braces" else ()
            out.append(Selector(text, matchers))
            i += 2 if after[0] == "braces" else 1
            continue
        if kind == "braces":
            raise ValueError(f"a selector without a metric name in {expr!r}: name it")
        i += 1
    return out


def problems(expr: str, known: Exported) -> list[str]:
    """What in ``expr`` the service does not export: unknown metric names, labels the metric
    does not have, and label values that appear nowhere in the source."""
    series = known.series()
    out: list[str] = []
    for sel in selectors(expr):
        if sel.metric not in series:
            out.append(f"{sel.metric}: not a metric the service exports")
            continue
        for label, op, value in sel.matchers:
            if label not in series[sel.metric] and label not in TARGET_LABELS:
                out.append(f"{sel.metric}: has no label {label!r}")
                continue
            if op not in ("=", "=~") or label in TARGET_LABELS or label in {"route", "status", "method"}:
                continue  # routes, statuses and methods come from the HTTP layer, not constants
            for alternative in value.split("|") if op == "=~" else [value]:
                if re.search(r"[.*+?()\[\]{}^$\\]", alternative):
                    continue
                if alternative not in known.strings:
                    out.append(f"{sel.metric}: {label}={alternative!r} is a value the source never uses")
    return out
