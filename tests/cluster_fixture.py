"""A local Redis Cluster for tests: 3 primaries and 3 replicas of Debian's redis-server on loopback.

`local_cluster()` starts six `redis-server --cluster-enabled yes` processes on free loopback ports in a
temporary directory (no persistence, a 1 s node timeout so a replica takes over quickly), joins them
with `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, waits until every node reports
`cluster_state:ok`, and yields a `LocalCluster`. On exit it stops exactly the processes it started.
A caller may give the nodes its own command line (a compose file's) and `--cluster create` its own flags.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

NODE_TIMEOUT_MS = 1000
START_TIMEOUT_S = 30.0
# A node's cluster bus listens on its port + 10000.
BUS_OFFSET = 10000


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=2)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class LocalCluster:
    nodes: list[Node]
    workdir: Path
    killed: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any one node: a cluster client learns the others from it."""
        return next(node for node in self.nodes if node.alive).url

    def primaries(self) -> list[Node]:
        """The live primaries, ordered by the first slot each serves."""
        first_slots: dict[int, int] = {}
        for node in self.live_nodes():
            with contextlib.closing(node.client()) as client:
                role = client.execute_command("ROLE")[0]
                if role in (b"master", "master"):
                    slots = _own_slots(client)
                    if slots:
                        first_slots[node.port] = min(slots)
        return sorted((n for n in self.nodes if n.port in first_slots), key=lambda n: first_slots[n.port])

    def live_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.alive]

    def kill(self, node: Node) -> None:
        """SIGKILL one node, as a crashed machine."""
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(10)
        self.killed.append(node)

    def wait_ok(self, timeout_s: float = START_TIMEOUT_S, primaries: int = 3) -> None:
        """Until every live node reports `cluster_state:ok`, `primaries` live primaries serve slots and
        every live replica has finished syncing (only a synced replica can take over)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            healthy = all(_state_ok(node) and _synced(node) for node in self.live_nodes())
            if healthy and len(self.primaries()) == primaries:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not reach cluster_state:ok within {timeout_s:g}s")


def _own_slots(client: redis.Redis) -> set[int]:
    """The slots the node behind `client` serves, from its own line of CLUSTER NODES."""
    slots: set[int] = set()
    raw = client.execute_command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    for line in text.splitlines():
        parts = line.split()
        if "myself" not in parts[2].split(","):
            continue
        for span in parts[8:]:
            if span.startswith("["):
                continue  # a slot being migrated
            low, _, high = span.partition("-")
            slots.update(range(int(low), int(high or low) + 1))
    return slots


def _state_ok(node: Node) -> bool:
    try:
        with contextlib.closing(node.client()) as client:
            info = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def _synced(node: Node) -> bool:
    """A primary, or a replica whose link to its primary is up."""
    try:
        with contextlib.closing(node.client()) as client:
            info = client.info("replication")
    except redis.RedisError:
        return False
    return info.get("role") == "master" or info.get("master_link_status") == "up"


def _free_port_with_bus() -> int:
    while True:
        port = random.randrange(20000, 30000)
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
            return port
        except OSError:
            continue


def _options(args: Sequence[str]) -> dict[str, list[str]]:
    """`--name value...` of a redis-server command line, by name (the program's name, if there, left out)."""
    options: dict[str, list[str]] = {}
    name: str | None = None
    for arg in args:
        if arg.startswith("--"):
            name = arg
            options[name] = []
        elif name is not None:
            options[name].append(arg)
    return options


def _start_node(workdir: Path, port: int, node_args: Sequence[str]) -> Node:
    directory = workdir / str(port)
    directory.mkdir()
    options = _options(
        [
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
            *("--appendonly", "no", "--save", ""),
            *("--loglevel", "warning", "--logfile", str(directory / "redis.log")),
        ]
    )
    options.update(_options(node_args))
    # Whatever the caller's command line says, a node here listens on loopback only, on its own port.
    options.update(_options(["--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]))
    argv = ["redis-server", *(word for name, values in options.items() for word in (name, *values))]
    return Node(port, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def _wait_pingable(node: Node, deadline: float) -> None:
    while True:
        try:
            with contextlib.closing(node.client()) as client:
                client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline or not node.alive:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def local_cluster(
    primaries: int = 3, replicas: int = 1, node_args: Sequence[str] = (), create_flags: Sequence[str] | None = None
) -> Iterator[LocalCluster]:
    """Start a cluster of `primaries` primaries with `replicas` replicas each; stop it on exit.

    `node_args` (a redis-server command line, such as a compose file's) add to or replace the nodes'
    options, all but their address and directory; `create_flags` replace the flags after the nodes'
    addresses in `redis-cli --cluster create`, and must make the same shape.
    """
    if create_flags is None:
        create_flags = ["--cluster-replicas", str(replicas), "--cluster-yes"]
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are needed (apt-get install redis-server redis-tools)")
    workdir = Path(tempfile.mkdtemp(prefix="sandpit-cluster-"))
    nodes: list[Node] = []
    try:
        ports: list[int] = []
        while len(ports) < primaries * (1 + replicas):
            port = _free_port_with_bus()
            if port not in ports:
                ports.append(port)
        nodes = [_start_node(workdir, port, node_args) for port in ports]
        deadline = time.monotonic() + START_TIMEOUT_S
        for node in nodes:
            _wait_pingable(node, deadline)
        addresses = [node.address for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, *create_flags],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=START_TIMEOUT_S,
        )
        cluster = LocalCluster(nodes, workdir)
        cluster.wait_ok(primaries=primaries)
        yield cluster
    finally:
        for node in nodes:
            if node.alive:
                node.process.terminate()
        for node in nodes:
            try:
                node.process.wait(10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
