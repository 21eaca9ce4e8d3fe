"""The compose file's Redis Cluster profile, read without starting a container.

The file is parsed as compose reads it (YAML merge keys resolved) and checked for what the profile
promises: six nodes of the stack's own Redis image in cluster mode, a one-shot init that makes three
primaries with one replica each, and a gateway and workers that use the cluster with one queue shard
per primary (compose itself validates the profile in tests/docker/test_compose_profiles.py, where
`make test-docker` has installed it). The nodes' command line and the init's flags are then run
for real: six local redis-servers, joined the way the init joins them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster_fixture import local_cluster

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "compose.yaml"
NODES = [f"redis-node-{n}" for n in range(1, 7)]
CLUSTER_SERVICES = {*NODES, "redis-cluster-init", "gateway-cluster", "worker-cluster"}

Service = dict[str, Any]


@pytest.fixture(scope="module")
def services() -> dict[str, Service]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Service] = document["services"]
    return found


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def init_script(services: dict[str, Service]) -> str:
    command = services["redis-cluster-init"]["command"]
    script: str = command[0] if isinstance(command, list) else command
    return script


def create_flags(script: str) -> list[str]:
    """The flags after the node list of the script's `redis-cli --cluster create` line."""
    line = next(line for line in script.splitlines() if "--cluster create" in line)
    words = shlex.split(line)
    return words[words.index("create") + 2 :]


def test_cluster_profile_holds_exactly_its_services(services: dict[str, Service]) -> None:
    profiled = {name for name, service in services.items() if "cluster" in service.get("profiles", [])}
    assert profiled == CLUSTER_SERVICES
    # The default stack is untouched: started without a profile, it still uses the single Redis.
    for name in ("redis", "gateway", "worker"):
        assert "profiles" not in services[name]
    for name in ("gateway", "worker"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "SANDPIT_REDIS_CLUSTER" not in services[name]["environment"]


def test_nodes_run_the_stacks_redis_image_in_cluster_mode(services: dict[str, Service]) -> None:
    single = services["redis"]
    volumes = set()
    for name in NODES:
        node = services[name]
        assert (node["image"], node["build"]) == (single["image"], single["build"])
        args = node["command"]
        assert option(args, "--cluster-enabled") == "yes"
        assert option(args, "--appendonly") == "yes"
        assert option(args, "--dir") == "/data"
        assert node["read_only"] is True and node["cap_drop"] == ["ALL"]
        assert node["healthcheck"]["test"] == single["healthcheck"]["test"]
        (volume,) = node["volumes"]
        volumes.add(volume.split(":")[0])
    assert len(volumes) == len(NODES), "each node keeps its own nodes.conf and append-only file"


def test_init_waits_for_every_node_and_makes_one_replica_per_primary(services: dict[str, Service]) -> None:
    init = services["redis-cluster-init"]
    assert init["restart"] == "no"
    assert init["depends_on"] == {name: {"condition": "service_healthy"} for name in NODES}
    script = init_script(services)
    assert create_flags(script) == ["--cluster-replicas", "1", "--cluster-yes"]
    numbers = re.search(r"for n in ([\d ]+); do", script)
    assert numbers is not None
    assert [f"redis-node-{n}" for n in numbers.group(1).split()] == NODES
    # `$$` is compose's escape for a `$` the shell sees; a single `$` would be compose interpolation.
    assert "$nodes" not in script.replace("$$nodes", "")


def test_gateway_and_workers_use_the_cluster_with_a_shard_per_primary(services: dict[str, Service]) -> None:
    primaries = len(NODES) // 2
    for name, plain in (("gateway-cluster", "gateway"), ("worker-cluster", "worker")):
        service, single = services[name], services[plain]
        env = service["environment"]
        assert env["SANDPIT_REDIS_CLUSTER"] == "true"
        assert int(env["SANDPIT_QUEUE_SHARDS"]) == primaries
        assert env["REDIS_URL"].split("//")[1].split(":")[0] in NODES
        assert service["depends_on"] == {"redis-cluster-init": {"condition": "service_completed_successfully"}}
        # Everything but how it reaches Redis is the plain service's: image, security settings, limits.
        differing = {key for key in service.keys() | single.keys() if service.get(key) != single.get(key)}
        assert differing == {"environment", "depends_on", "profiles"}
        assert {
            k: v for k, v in env.items() if k not in {"REDIS_URL", "SANDPIT_REDIS_CLUSTER", "SANDPIT_QUEUE_SHARDS"}
        } == {k: v for k, v in single["environment"].items() if k != "REDIS_URL"}


def test_gateway_may_hold_many_connections(services: dict[str, Service]) -> None:
    for name in ("gateway", "gateway-cluster"):
        gateway = services[name]
        assert int(gateway["sysctls"]["net.core.somaxconn"]) >= 4096
        # No fixed nofile: one above the engine's own hard limit stops the container from starting (seen:
        # an engine with 20,000); the gateway raises its soft limit to the container's hard one itself.
        assert "nofile" not in gateway.get("ulimits", {})


def test_node_command_and_init_flags_make_a_working_cluster(services: dict[str, Service]) -> None:
    node_args = services["redis-node-1"]["command"]
    flags = create_flags(init_script(services))
    with local_cluster(primaries=len(NODES) // 2, replicas=1, node_args=node_args, create_flags=flags) as cluster:
        roles = [node.client().info("replication")["role"] for node in cluster.nodes]
        info = cluster.nodes[0].client().cluster("info")
    assert sorted(roles) == ["master"] * 3 + ["slave"] * 3
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
