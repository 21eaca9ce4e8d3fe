"""The Kubernetes manifests: every object valid against the API schemas (offline), and wired to the code.

No cluster, kubectl or kustomize runs here, so the kustomizations are rendered in Python (resources,
bases, strategic-merge patches and image overrides, all they use) and each built-in object is validated
with `kubernetes-validate`. The `redis-cluster` overlay is rendered and validated the same way. KEDA's
ScaledObject and the Prometheus Operator's ServiceMonitor and PodMonitor have no schema in that package;
their fields are checked one by one instead, against the code they must agree with (stream and group
names, ports).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import Settings
from service.queue.keys import Keys

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
CLUSTER_OVERLAY = K8S / "redis-cluster"
SECCOMP_PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "seccomp" / "sandpit-worker.json"
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
NAMESPACE_SYSCALLS = {"clone", "mount", "pivot_root", "sethostname", "umount2", "unshare"}

Obj = dict[str, Any]


def identity(obj: Obj) -> tuple[str, str, str | None]:
    return obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")


def merge_patch(target: Any, patch: Any, custom: bool) -> Any:
    """Strategic merge as kustomize does it for what our patches touch: maps merge, lists of named
    items (containers, env) merge by name; other lists, and every list of a custom resource, are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge_patch(target[key], value, custom) if key in target else value
        return merged
    named = isinstance(target, list) and isinstance(patch, list) and not custom
    if named and all(isinstance(item, dict) and "name" in item for item in target + patch):
        by_name = {item["name"]: item for item in target}
        for item in patch:
            by_name[item["name"]] = (
                merge_patch(by_name[item["name"]], item, custom) if item["name"] in by_name else item
            )
        return list(by_name.values())
    return patch


def apply_patch(objects: list[Obj], patch: Obj) -> list[Obj]:
    matches = [obj for obj in objects if identity(obj) == identity(patch)]
    assert len(matches) == 1, f"patch {identity(patch)} matches {len(matches)} objects"
    if patch.get("$patch") == "delete":
        return [obj for obj in objects if obj is not matches[0]]
    custom = (patch["apiVersion"], patch["kind"]) in CUSTOM_KINDS
    return [merge_patch(obj, patch, custom) if obj is matches[0] else obj for obj in objects]


def render_kustomization(directory: Path) -> list[Obj]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "resources", "patches", "images"}
    assert set(kustomization) <= known, "renderer knows only these fields"
    images = {image["name"]: image for image in kustomization.get("images", [])}
    objects: list[Obj] = []
    for resource in kustomization["resources"]:
        path = (directory / resource).resolve()
        if path.is_dir():
            objects += render_kustomization(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, "renderer knows only patches given by path"
        for patch in yaml.safe_load_all((directory / entry["path"]).read_text()):
            objects = apply_patch(objects, patch)
    for obj in objects:
        for container in pod_spec(obj).get("containers", []) if pod_spec(obj) else []:
            name = container["image"].rsplit(":", 1)[0]
            if name in images:
                override = images[name]
                container["image"] = f"{override.get('newName', name)}:{override['newTag']}"
    return objects


def pod_spec(obj: Obj) -> Obj | None:
    if obj["kind"] in {"Deployment", "StatefulSet", "Job"}:
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


@pytest.fixture(scope="module")
def cluster_objects() -> list[Obj]:
    return render_kustomization(CLUSTER_OVERLAY)


def container_env(objects: list[Obj], kind: str, name: str) -> dict[str, str]:
    spec = pod_spec(find(objects, kind, name))
    assert spec is not None
    return {e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e}


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_every_builtin_object_of_the_cluster_overlay_matches_the_kubernetes_schema(
    cluster_objects: list[Obj],
) -> None:
    for obj in builtin(cluster_objects):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_cluster_overlay_replaces_the_single_redis(cluster_objects: list[Obj], objects: list[Obj]) -> None:
    kinds_and_names = {(o["kind"], o["metadata"]["name"]) for o in cluster_objects}
    assert ("StatefulSet", "redis") not in kinds_and_names
    assert ("Service", "redis") not in kinds_and_names
    # Everything else of the base is still there.
    base = {(o["kind"], o["metadata"]["name"]) for o in objects} - {("StatefulSet", "redis"), ("Service", "redis")}
    assert base <= kinds_and_names


def test_cluster_nodes_run_in_cluster_mode_with_an_append_only_file(cluster_objects: list[Obj]) -> None:
    nodes = find(cluster_objects, "StatefulSet", "redis-cluster")
    assert nodes["spec"]["replicas"] == 6
    container = nodes["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert option(args, "--cluster-enabled") == "yes"
    assert option(args, "--appendonly") == "yes"
    assert option(args, "--dir") == "/data"
    assert option(args, "--cluster-announce-hostname").endswith(
        f".{nodes['spec']['serviceName']}.sandpit.svc.cluster.local"
    )
    assert {p["containerPort"] for p in container["ports"]} == {6379, 16379}
    service = find(cluster_objects, "Service", nodes["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= nodes["spec"]["template"]["metadata"]["labels"].items()


def test_create_job_joins_every_node_into_primaries_with_one_replica_each(cluster_objects: list[Obj]) -> None:
    nodes = find(cluster_objects, "StatefulSet", "redis-cluster")
    script = find(cluster_objects, "Job", "redis-cluster-create")["spec"]["template"]["spec"]["containers"][0]["args"][
        0
    ]
    assert "--cluster create" in script and "--cluster-replicas 1" in script and "--cluster-yes" in script
    numbers = " ".join(str(n) for n in range(nodes["spec"]["replicas"]))
    assert f"for n in {numbers}; do" in script
    assert f'$(getent hosts "{nodes["metadata"]["name"]}-$n.{nodes["spec"]["serviceName"]}.' in script


def test_gateway_and_workers_use_one_queue_shard_per_primary(cluster_objects: list[Obj]) -> None:
    nodes = find(cluster_objects, "StatefulSet", "redis-cluster")
    primaries = nodes["spec"]["replicas"] // 2
    for kind, name in (("Deployment", "gateway"), ("Deployment", "worker")):
        env = container_env(cluster_objects, kind, name)
        assert env["SANDPIT_REDIS_CLUSTER"] == "true"
        assert int(env["SANDPIT_QUEUE_SHARDS"]) == primaries
        assert env["REDIS_URL"] == f"redis://{nodes['spec']['serviceName']}.sandpit.svc.cluster.local:6379/0"
        assert "SANDPIT_WORKER_CONCURRENCY" in env or name == "gateway", "the patch merges env, it does not replace it"


def test_cluster_nodes_are_reachable_by_workers_each_other_and_the_create_job(cluster_objects: list[Obj]) -> None:
    labels = find(cluster_objects, "StatefulSet", "redis-cluster")["spec"]["template"]["metadata"]["labels"]
    egress = find(cluster_objects, "NetworkPolicy", "worker-egress-redis-only")["spec"]["egress"]
    redis_rule = next(rule for rule in egress if rule["ports"][0]["port"] == 6379)
    assert redis_rule["to"][0]["podSelector"]["matchLabels"].items() <= labels.items()
    bus = find(cluster_objects, "NetworkPolicy", "redis-cluster-bus")
    assert bus["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    peers, job = bus["spec"]["ingress"]
    assert peers["from"][0]["podSelector"]["matchLabels"].items() <= labels.items()
    assert {p["port"] for p in peers["ports"]} == {6379, 16379}
    job_labels = find(cluster_objects, "Job", "redis-cluster-create")["spec"]["template"]["metadata"]["labels"]
    assert job["from"][0]["podSelector"]["matchLabels"].items() <= job_labels.items()


def test_cluster_nodes_and_create_job_meet_pod_security_restricted(cluster_objects: list[Obj]) -> None:
    for kind, name in (("StatefulSet", "redis-cluster"), ("Job", "redis-cluster-create")):
        spec = pod_spec(find(cluster_objects, kind, name))
        assert spec is not None
        assert restricted_violations(spec) == set(), name


def test_keda_watches_every_shard_stream_on_the_cluster(cluster_objects: list[Obj]) -> None:
    env = container_env(cluster_objects, "Deployment", "worker")
    keys = Keys(Settings().key_prefix, shards=int(env["SANDPIT_QUEUE_SHARDS"]), tagged=True)
    triggers = find(cluster_objects, "ScaledObject", "worker")["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-cluster-streams"}
    nodes = find(cluster_objects, "StatefulSet", "redis-cluster")
    for trigger in triggers:
        meta = trigger["metadata"]
        addresses = [address.strip() for address in meta["addresses"].split(",")]
        service = nodes["spec"]["serviceName"]
        assert addresses == [f"{service}-{n}.{service}.sandpit.svc.cluster.local:6379" for n in range(6)]
        if "consumerGroup" in meta:
            assert meta["consumerGroup"] == keys.group
    pending = sorted(t["metadata"]["stream"] for t in triggers if "consumerGroup" in t["metadata"])
    backlog = sorted(t["metadata"]["stream"] for t in triggers if "streamLength" in t["metadata"])
    assert pending == backlog == sorted(shard.jobs for shard in keys.all_shards)


# KEDA adds worker pods when 3/4 of a pod's slots are busy on average, or when the streams hold twice
# its slots (running plus as many waiting); each shard's triggers on a cluster carry a third of that.
BUSY_SHARE = 0.75
STREAMED_PER_SLOT = 2


def keda_targets(objects: list[Obj]) -> tuple[list[int], list[int]]:
    """The pending-entries and stream-length targets of the worker's ScaledObject, one per trigger."""
    triggers = find(objects, "ScaledObject", "worker")["spec"]["triggers"]
    pending = [int(t["metadata"]["pendingEntriesCount"]) for t in triggers if "pendingEntriesCount" in t["metadata"]]
    streamed = [int(t["metadata"]["streamLength"]) for t in triggers if "streamLength" in t["metadata"]]
    return pending, streamed


@pytest.mark.parametrize("overlay", ["single", "cluster"])
def test_keda_targets_follow_the_pods_slots(objects: list[Obj], cluster_objects: list[Obj], overlay: str) -> None:
    # A pod of 256 slots scaled at 12 busy ones (a target left from 16-slot pods) would run ~5 % full.
    rendered = objects if overlay == "single" else cluster_objects
    env = container_env(rendered, "Deployment", "worker")
    slots = int(env["SANDPIT_WORKER_CONCURRENCY"])
    shards = int(env.get("SANDPIT_QUEUE_SHARDS", "1"))
    pending, streamed = keda_targets(rendered)
    assert len(pending) == len(streamed) == shards
    assert all(target == math.ceil(slots * BUSY_SHARE / shards) for target in pending), (slots, pending)
    assert all(target == math.ceil(slots * STREAMED_PER_SLOT / shards) for target in streamed), (slots, streamed)
