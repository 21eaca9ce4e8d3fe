"""The Kubernetes manifests: every object valid against the API schemas (offline), and wired to the code.

No cluster, kubectl or kustomize runs here, so the kustomization is rendered in Python (resources plus
image overrides, all it uses) and each built-in object is validated with `kubernetes-validate`. KEDA's
ScaledObject and the Prometheus Operator's ServiceMonitor and PodMonitor have no schema in that package;
their fields are checked one by one instead, against the code they must agree with (stream and group
names, ports).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import Settings
from service.queue.keys import Keys

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SECCOMP_PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "seccomp" / "sandpit-worker.json"
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
NAMESPACE_SYSCALLS = {"clone", "mount", "pivot_root", "sethostname", "umount2", "unshare"}

Obj = dict[str, Any]


def render_kustomization(directory: Path) -> list[Obj]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images"}, "renderer knows only these fields"
    images = {image["name"]: image for image in kustomization.get("images", [])}
    objects: list[Obj] = []
    for resource in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((directory / resource).read_text()) if doc]
    for obj in objects:
        for container in pod_spec(obj).get("containers", []) if pod_spec(obj) else []:
            name = container["image"].rsplit(":", 1)[0]
            if name in images:
                override = images[name]
                container["image"] = f"{override.get('newName', name)}:{override['newTag']}"
    return objects


def pod_spec(obj: Obj) -> Obj | None:
    if obj["kind"] in {"Deployment", "StatefulSet"}:
        spec: Obj = obj["spec"]["template"]["spec"]
        return spec
    return None


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render_kustomization(K8S)


def builtin(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if (o["apiVersion"], o["kind"]) not in CUSTOM_KINDS]


def test_every_builtin_object_matches_the_kubernetes_schema(objects: list[Obj]) -> None:
    checked = builtin(objects)
    assert len(checked) >= 12
    for obj in checked:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_an_unknown_field(objects: list[Obj]) -> None:
    broken = json.loads(json.dumps(find(objects, "Deployment", "gateway")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_only_keda_and_prometheus_monitors_are_custom_kinds(objects: list[Obj]) -> None:
    assert {(o["apiVersion"], o["kind"]) for o in objects} & CUSTOM_KINDS == CUSTOM_KINDS


def test_scaled_object_watches_the_queue_the_workers_read(objects: list[Obj]) -> None:
    scaled = find(objects, "ScaledObject", "worker")
    target = scaled["spec"]["scaleTargetRef"]
    worker = find(objects, target["kind"], target["name"])
    assert worker["metadata"]["namespace"] == scaled["metadata"]["namespace"]
    keys = Keys(Settings().key_prefix)
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["stream"] == keys.jobs
        assert meta["address"] == "redis.sandpit.svc.cluster.local:6379"
        assert all(isinstance(value, str) for value in meta.values()), "KEDA metadata values are strings"
        if "consumerGroup" in meta:
            assert meta["consumerGroup"] == keys.group
            assert int(meta["pendingEntriesCount"]) > 0
        else:
            assert int(meta["streamLength"]) > 0
    assert 0 < scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_service_monitor_scrapes_the_gateway_service(objects: list[Obj]) -> None:
    monitor = find(objects, "ServiceMonitor", "gateway")
    service = find(objects, "Service", "gateway")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]


def test_pod_monitor_scrapes_the_port_the_workers_serve_metrics_on(objects: list[Obj]) -> None:
    monitor = find(objects, "PodMonitor", "worker")
    worker = find(objects, "Deployment", "worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    )
    port = next(p for p in container["ports"] if p["name"] == monitor["spec"]["podMetricsEndpoints"][0]["port"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SANDPIT_WORKER_METRICS_PORT"] == str(port["containerPort"])
    policy = find(objects, "NetworkPolicy", "worker-egress-redis-only")
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [port["containerPort"]]


def test_grace_period_outlasts_the_longest_call(objects: list[Obj]) -> None:
    settings = Settings()
    longest = settings.max_timeout_s + settings.compile_timeout_s
    for name in ("gateway", "worker"):
        spec = pod_spec(find(objects, "Deployment", name))
        assert spec is not None
        assert spec["terminationGracePeriodSeconds"] > longest


def test_gateway_probes_use_the_health_endpoints(objects: list[Obj]) -> None:
    spec = pod_spec(find(objects, "Deployment", "gateway"))
    assert spec is not None
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_every_deployment_has_a_disruption_budget(objects: list[Obj]) -> None:
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(
            b["metadata"]["namespace"] == deployment["metadata"]["namespace"]
            and b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            for b in budgets
        ), deployment["metadata"]["name"]


def restricted_violations(spec: Obj) -> set[str]:
    """What Pod Security `restricted` would refuse in this pod spec (the checks that apply to ours)."""
    found: set[str] = set()
    pod = spec.get("securityContext", {})
    if pod.get("seccompProfile", {}).get("type") not in {"RuntimeDefault", "Localhost"}:
        found.add("seccompProfile")
    for container in spec["containers"]:
        context = container.get("securityContext", {})
        # The container's own setting wins over the pod's.
        if not context.get("runAsNonRoot", pod.get("runAsNonRoot")):
            found.add("runAsNonRoot")
        if context.get("allowPrivilegeEscalation") is not False:
            found.add("allowPrivilegeEscalation")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or context.get("capabilities", {}).get("add"):
            found.add("capabilities")
        if context.get("procMount", "Default") != "Default":
            found.add("procMount")
        if context.get("privileged"):
            found.add("privileged")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.add(key)
    if any("hostPath" in volume for volume in spec.get("volumes", [])):
        found.add("hostPath")
    return found


def test_gateway_and_redis_meet_pod_security_restricted(objects: list[Obj]) -> None:
    for kind, name in (("Deployment", "gateway"), ("StatefulSet", "redis")):
        obj = find(objects, kind, name)
        spec = pod_spec(obj)
        assert spec is not None
        assert restricted_violations(spec) == set(), name
        namespace = find(objects, "Namespace", obj["metadata"]["namespace"])
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_worker_departs_from_restricted_only_by_the_documented_exceptions(objects: list[Obj]) -> None:
    worker = find(objects, "Deployment", "worker")
    spec = pod_spec(worker)
    assert spec is not None
    # Root and capabilities only in the pod's own user namespace, for the entrypoint that delegates a cgroup.
    assert restricted_violations(spec) == {"procMount", "runAsNonRoot", "allowPrivilegeEscalation", "capabilities"}
    assert spec["hostUsers"] is False
    capabilities = spec["containers"][0]["securityContext"]["capabilities"]
    assert capabilities["drop"] == ["ALL"]
    assert set(capabilities["add"]) == {"SYS_ADMIN", "CHOWN", "SETUID", "SETGID", "SETPCAP"}
    assert spec["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": f"profiles/{SECCOMP_PROFILE.name}",
    }
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for resource in ("cpu", "memory"):
        assert container["resources"]["requests"][resource] == container["resources"]["limits"][resource]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    namespace = find(objects, "Namespace", worker["metadata"]["namespace"])
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_seccomp_profile_adds_only_the_namespace_syscalls() -> None:
    profile = json.loads(SECCOMP_PROFILE.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    unconditional = [
        rule
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args") and not rule.get("includes")
    ]
    ours = [rule for rule in unconditional if rule.get("comment", "").startswith("sandpit:")]
    assert len(ours) == 1
    assert set(ours[0]["names"]) == NAMESPACE_SYSCALLS
    others = {name for rule in unconditional if rule is not ours[0] for name in rule["names"]}
    assert not others & (NAMESPACE_SYSCALLS | {"setns", "bpf", "ptrace", "init_module", "kexec_load"})


def test_worker_egress_reaches_only_redis_and_dns(objects: list[Obj]) -> None:
    policy = find(objects, "NetworkPolicy", "worker-egress-redis-only")
    worker = find(objects, "Deployment", "worker")
    assert policy["metadata"]["namespace"] == worker["metadata"]["namespace"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    )
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = sorted(port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"])
    assert ports == [53, 53, 6379]
    redis = find(objects, "StatefulSet", "redis")
    redis_rule = next(r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 6379)
    assert (
        redis_rule["to"][0]["podSelector"]["matchLabels"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )


def test_redis_keeps_an_append_only_file_on_a_persistent_volume(objects: list[Obj]) -> None:
    redis = find(objects, "StatefulSet", "redis")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--dir") + 1] == "/data"
    claims = {c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]}
    assert {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/data"} <= claims
