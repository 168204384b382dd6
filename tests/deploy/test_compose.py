"""deploy/compose.yaml: valid against the Compose Specification's JSON schema (vendored in
schemas/), and wired as the README says: migrations once before the instances, one API+ingest
and one worker instance, Kafka in KRaft mode, Prometheus and Grafana with their files."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.deploy.tools import DEPLOY, SCHEMAS, yaml_file

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml_file(COMPOSE)
    assert isinstance(data, dict)
    return data


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_broken_file(compose: dict[str, Any]) -> None:
    """The vendored schema is strict enough to matter: a misspelt key fails it."""
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    broken = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"]}}}
    broken["services"]["api"]["depends_onn"] = ["migrate"]
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_migrations_run_once_before_both_instances(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["incident", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, role in (("api", "api"), ("worker", "worker")):
        service = services[name]
        assert service["command"] == ["incident", "serve", "--role", role]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["INCIDENT_STORE__URL"].startswith("postgresql://")
        assert env["INCIDENT_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert service["image"] == services["migrate"]["image"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


def test_kafka_is_the_apache_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_bind_mounts_exist_and_monitoring_is_wired(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
    prom_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    config = yaml_file(DEPLOY / prom_mounts["/etc/prometheus/prometheus.yml"])
    assert config["rule_files"] == ["/etc/prometheus/rules.yaml"]
    assert prom_mounts["/etc/prometheus/rules.yaml"] == "./prometheus/rules.yaml"
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"api:8080", "worker:8080"}
    assert all(job["job_name"].startswith("incident") for job in config["scrape_configs"])
    graf_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert graf_mounts["/var/lib/grafana/dashboards/incident.json"] == "./grafana/incident.json"
    datasources = yaml_file(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((DEPLOY / "grafana/incident.json").read_text(encoding="utf-8"))
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {source["uid"]}
    provider = yaml_file(DEPLOY / "grafana/provisioning/dashboards/incident.yaml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
