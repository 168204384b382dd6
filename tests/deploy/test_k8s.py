"""deploy/k8s: every built-in object passes kubernetes-validate (strict: no unknown fields) for
the Kubernetes release below; the Prometheus Operator objects pass the openAPIV3Schema of the
operator's own CRDs (vendored in schemas/), which kubernetes-validate cannot know. Then the
wiring: selectors that select, probes, limits and a locked-down security context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.tools import DEPLOY, SCHEMAS, yaml_documents, yaml_file

K8S = DEPLOY / "k8s"
#: The oldest Kubernetes release the manifests are for (the preStop sleep action is GA in 1.32).
KUBERNETES_VERSION = "1.32.0"
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}


def _objects() -> list[tuple[Path, dict[str, Any]]]:
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend((path, doc) for doc in yaml_documents(path))
    return out


OBJECTS = _objects()


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in OBJECTS if doc["kind"] == kind]


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as the API server's strict field validation
    does (kubectl's default): every object with declared properties gets
    additionalProperties false, unless it keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml_file(SCHEMAS / CRD_FILES[kind])
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
    return schema


def _crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_crd_schema(doc["kind"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in OBJECTS if doc["kind"] not in CRD_FILES],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_builtin_kinds_pass_kubernetes_validate_strictly(doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate: in the test extras"
    )
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {err.message} at {list(err.path)}")


def test_kubernetes_validate_catches_a_broken_object() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate: in the test extras"
    )
    (deployment,) = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == "incident-api"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_operator_objects_pass_their_crd_schema(kind: str) -> None:
    (doc,) = _by_kind(kind)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert not _crd_errors(doc), _crd_errors(doc)
    # The CRD schema is strict enough to matter: an unknown field or a wrong type fails it.
    broken = {**doc, "spec": {**doc["spec"], "unknownField": True}}
    assert _crd_errors(broken)
    key = "groups" if kind == "PrometheusRule" else "endpoints"
    assert _crd_errors({**doc, "spec": {**doc["spec"], key: "not a list"}})


def test_prometheus_rule_holds_exactly_the_rules_of_rules_yaml() -> None:
    (rule,) = _by_kind("PrometheusRule")
    assert rule["spec"]["groups"] == yaml_file(DEPLOY / "prometheus/rules.yaml")["groups"]


def test_kustomization_lists_every_file() -> None:
    listed = yaml_file(K8S / "kustomization.yaml")["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


def _pod_labels(name: str) -> dict[str, str]:
    (deployment,) = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == name]
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_roles_commands_and_selectors() -> None:
    api, worker = _pod_labels("incident-api"), _pod_labels("incident-worker")
    for deployment in _by_kind("Deployment"):
        role = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["incident", "serve", "--role", role]
    (job,) = _by_kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["incident", "migrate"]
    services = {s["metadata"]["name"]: s for s in _by_kind("Service")}
    api_service = services["incident-api"]["spec"]["selector"]
    assert _selects(api_service, api) and not _selects(api_service, worker)
    metrics_service = services["incident-metrics"]["spec"]["selector"]
    assert _selects(metrics_service, api) and _selects(metrics_service, worker)
    (monitor,) = _by_kind("ServiceMonitor")
    assert _selects(
        monitor["spec"]["selector"]["matchLabels"], services["incident-metrics"]["metadata"]["labels"]
    )
    assert not _selects(
        monitor["spec"]["selector"]["matchLabels"], services["incident-api"]["metadata"]["labels"]
    )
    (ingress,) = _by_kind("Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "incident-api"
    for pdb in _by_kind("PodDisruptionBudget"):
        targets = [
            labels for labels in (api, worker) if _selects(pdb["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(targets) == 1, pdb["metadata"]["name"]
    deployments = {d["metadata"]["name"] for d in _by_kind("Deployment")}
    for hpa in _by_kind("HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        types = {m["type"] for m in hpa["spec"]["metrics"]}
        assert "Resource" in types and types & {"Pods", "External"}, hpa["metadata"]["name"]
    (policy,) = _by_kind("NetworkPolicy")
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], api)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in _by_kind("Deployment")]
    out += [(j["metadata"]["name"], j["spec"]["template"]["spec"]) for j in _by_kind("Job")]
    return out


@pytest.mark.parametrize(("name", "pod"), _pod_specs(), ids=[n for n, _ in _pod_specs()])
def test_pods_are_locked_down_with_limits(name: str, pod: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    mounts_by_volume = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert {"cpu", "memory"} <= limits.keys() and {"cpu", "memory"} <= requests.keys()
        mounted = {m["mountPath"]: mounts_by_volume[m["name"]] for m in container["volumeMounts"]}
        assert "emptyDir" in mounted["/tmp"]
        if name != "incident-migrate":
            # With a read-only root, var/ (relative to the image's WORKDIR) is an emptyDir.
            assert "emptyDir" in mounted["/var/lib/incident/var"]
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert container[probe]["httpGet"]["path"] == "/healthz", probe
                assert container[probe]["httpGet"]["port"] == "http"
            assert container["ports"][0]["containerPort"] == 8080
