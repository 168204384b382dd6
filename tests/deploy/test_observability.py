"""deploy/prometheus and deploy/grafana: the rules load and their unit tests pass (promtool),
every alert has a test that makes it fire, and every expression in the rules and the dashboard
selects metrics, labels and label values that the service really exports: the dashboard and
the alerts cannot drift from the code."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.deploy.promql import Exported, exported, problems, selectors
from tests.deploy.tools import DEPLOY, SRC, tool, yaml_file

RULES = DEPLOY / "prometheus/rules.yaml"
RULES_TEST = DEPLOY / "prometheus/rules_test.yaml"
DASHBOARD = DEPLOY / "grafana/incident.json"
PROMTOOL_HOW = "apt-get install prometheus: Debian's package has promtool"


@pytest.fixture(scope="module")
def known() -> Exported:
    return exported(SRC)


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    promtool = tool("promtool", PROMTOOL_HOW)
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml_file(RULES)["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
        out = []
        for panel in panels:
            out += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
            out += walk(panel.get("panels", []))
        return out

    return walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])


def test_promtool_check_rules() -> None:
    run = _promtool("check", "rules", str(RULES))
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_test_rules() -> None:
    run = _promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_check_compose_prometheus_config(tmp_path: Path) -> None:
    """prometheus.yml as compose mounts it: the rules file at its path in the container."""
    config = yaml_file(DEPLOY / "prometheus/prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules.yaml"]
    shutil.copy(RULES, tmp_path / "rules.yaml")
    config["rule_files"] = [str(tmp_path / "rules.yaml")]
    (tmp_path / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
    run = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_unit_test_that_makes_it_fire() -> None:
    tests = yaml_file(RULES_TEST)
    assert tests["rule_files"] == ["rules.yaml"]
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts - fired == set()


def test_alerts_have_severity_and_words_for_the_duty_engineer() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_rules_use_only_what_the_service_exports(known: Exported) -> None:
    found = {rule["alert"]: problems(rule["expr"], known) for rule in _rules()}
    assert {k: v for k, v in found.items() if v} == {}


def test_dashboard_uses_only_what_the_service_exports(known: Exported) -> None:
    exprs = _dashboard_exprs()
    assert exprs
    found = {f"{title}: {expr}": problems(expr, known) for title, expr in exprs}
    assert {k: v for k, v in found.items() if v} == {}


def test_dashboard_shows_what_the_duty_engineer_needs() -> None:
    shown = {sel.metric for _, expr in _dashboard_exprs() for sel in selectors(expr)}
    needed = {
        "incident_reports_consumed_total",  # reports in
        "incident_reports_stored_total",  # reports out
        "incident_reports_dead_lettered_total",  # DLQ
        "incident_deliveries_total",  # deliveries by channel and state
        "incident_twilio_webhooks_total",  # carrier callbacks
        "incident_timeline_events_total",  # SLA clocks
        "incident_reports_consumer_lag",  # lag
        "incident_notify_oldest_due_seconds",  # fan-out backlog
    }
    assert needed - shown == set()
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    assert len({p["id"] for p in panels}) == len(panels)


def test_the_source_scan_finds_every_metric_of_a_real_registry(known: Exported) -> None:
    """The names read from the source are the names a running service shows: every family of
    the app's Metrics (and the webhooks' counters) is found, with its type and labels."""
    from incident.core.metrics import Metrics

    registry = Metrics().registry
    _register_webhook_metrics(registry)
    families = {m.name: m for m in registry.collect()}
    assert families
    for name, family in families.items():
        found = known.families.get(name)
        assert found is not None, f"{name} is on /metrics but the source scan missed it"
        assert found.kind.lower() == family.type, name
        samples = {label for s in family.samples for label in s.labels} - {"le", "quantile"}
        assert samples <= set(found.labels), name


def _register_webhook_metrics(registry: CollectorRegistry) -> None:
    """The webhooks' counters, wherever the module that makes them lives now."""
    for module in ("incident.api.webhooks",):
        try:
            found = importlib.import_module(module)
        except ImportError:
            continue  # moved: the source scan still finds it, this cross-check does not
        found.HookMetrics(registry)


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("sum(rate(incident_reports_consumd_total[5m]))", "not a metric"),
        ('incident_deliveries_total{stat="retry"}', "no label"),
        ('incident_deliveries_total{state="retrying"}', "never uses"),
        ('rate(incident_twilio_webhooks_total{outcome=~"forbidden|forbiden"}[5m])', "never uses"),
        ("incident_kafka_up_total", "not a metric"),
        ("histogram_quantile(0.9, rate(incident_deliveries_bucket[5m]))", "not a metric"),
    ],
)
def test_the_check_catches_drift(expr: str, complaint: str, known: Exported) -> None:
    found = problems(expr, known)
    assert found and complaint in found[0]


def test_the_scanner_reads_selectors_not_functions_or_labels(known: Exported) -> None:
    expr = (
        'sum by (job, state) (rate(incident_deliveries_total{state=~"retry|failed", job="x"}[$__rate_interval]))'
        " / on (job) group_left () max without (instance) (incident_kafka_up) > 0 unless absent(up)"
    )
    assert [s.metric for s in selectors(expr)] == ["incident_deliveries_total", "incident_kafka_up", "up"]
    assert problems(expr, known) == []
