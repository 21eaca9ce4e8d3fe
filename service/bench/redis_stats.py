"""What a scenario cost Redis, in Redis's own words: commands, command time and CPU per call.

Before and after each scenario the benchmark reads `INFO commandstats`, `INFO cpu`, `INFO memory` and
`INFO stats` from every primary (one for a single Redis, each master of a Redis Cluster) and sums them, or keeps
each primary's apart to show how evenly a cluster's work spread. The difference, divided by the calls
of the scenario, is the Redis cost of one call. `commandstats` also counts the commands a Lua script
runs, so a script shows up as its EVALSHA plus every command inside it; the script's own time includes
those commands', so it is kept apart (`script_us`) instead of being added to `command_us` twice. `INFO`
itself, which only the benchmark sends, is left out. Most of Redis's CPU per call at a few hundred calls/s
is not command time but its round trips: `reads` counts the reads of client sockets that brought
commands (each one a turn of its event loop, and usually a wake-up), `writes` the replies and pushes
written to sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

# Commands whose time includes the commands they ran, which commandstats counts on their own as well.
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
# Sent only by this module while measuring.
OWN_COMMANDS = frozenset({"info"})
TOP_COMMANDS = 16


@dataclass(frozen=True)
class CommandCount:
    calls: int
    usec: int


@dataclass(frozen=True)
class RedisSnapshot:
    commands: dict[str, CommandCount] = field(default_factory=dict)
    cpu_s: float = 0.0
    used_memory: int = 0
    reads: int = 0
    writes: int = 0

    def __add__(self, other: RedisSnapshot) -> RedisSnapshot:
        names = self.commands.keys() | other.commands.keys()
        empty = CommandCount(0, 0)
        commands = {
            name: CommandCount(
                self.commands.get(name, empty).calls + other.commands.get(name, empty).calls,
                self.commands.get(name, empty).usec + other.commands.get(name, empty).usec,
            )
            for name in names
        }
        return RedisSnapshot(
            commands,
            self.cpu_s + other.cpu_s,
            self.used_memory + other.used_memory,
            self.reads + other.reads,
            self.writes + other.writes,
        )


def parse_snapshot(
    commandstats: dict[str, Any], cpu: dict[str, Any], memory: dict[str, Any], stats: dict[str, Any] | None = None
) -> RedisSnapshot:
    """A snapshot from redis-py's parsed INFO sections (`cmdstat_xadd: {calls: 3, usec: 12, ...}`)."""
    commands = {
        name.removeprefix("cmdstat_"): CommandCount(int(stats["calls"]), int(stats["usec"]))
        for name, stats in commandstats.items()
        if name.startswith("cmdstat_") and name.removeprefix("cmdstat_") not in OWN_COMMANDS
    }
    cpu_s = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    stats = stats or {}
    reads, writes = int(stats.get("total_reads_processed", 0)), int(stats.get("total_writes_processed", 0))
    return RedisSnapshot(commands, cpu_s, int(memory["used_memory"]), reads, writes)


def parse_primaries(cluster_nodes: str) -> list[str]:
    """`host:port` of every master that is up and serves slots, from the text of CLUSTER NODES.

    A master without slots holds no data; a replica that was just told to follow its primary still
    shows as one until the news has gone round.
    """
    found: list[str] = []
    for line in cluster_nodes.splitlines():
        parts = line.split()
        # id, address, flags, master, ping-sent, pong-recv, config-epoch, link-state, slots...
        if len(parts) < 9:
            continue
        flags = set(parts[2].split(","))
        if "master" not in flags or flags & {"fail", "fail?", "noaddr", "handshake"}:
            continue
        # `ip:port@cport[,hostname]`
        found.append(parts[1].split("@", 1)[0])
    return sorted(found)


def with_address(url: str, address: str) -> str:
    """`url` (its scheme, credentials and database kept) pointing at another `host:port`."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{address}" if credentials else address
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def primary_urls(url: str) -> list[str]:
    """Every primary behind `url`: itself for a single Redis, each master for a node of a Redis Cluster."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        cluster = await client.info("cluster")
        if not int(cluster.get("cluster_enabled", 0)):
            return [url]
        nodes = await client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()
    text = nodes if isinstance(nodes, str) else str(nodes)
    return [with_address(url, address) for address in parse_primaries(text)]


class RedisMeter:
    """One open connection to each primary, read before and after a scenario.

    The connections stay open for the whole run, so the commands of connecting (HELLO, CLIENT SETINFO,
    SELECT) are not counted against a scenario.
    """

    def __init__(self, urls: Iterable[str]) -> None:
        self.urls = list(urls)
        self.clients = [aioredis.Redis.from_url(url) for url in self.urls]

    @classmethod
    async def discover(cls, url: str) -> RedisMeter:
        return cls(await primary_urls(url))

    async def snapshot(self) -> RedisSnapshot:
        """All primaries together."""
        return sum((await self.snapshot_by_node()).values(), RedisSnapshot())

    async def snapshot_by_node(self) -> dict[str, RedisSnapshot]:
        """Each primary on its own, by URL: how evenly the work spread."""
        found: dict[str, RedisSnapshot] = {}
        for url, client in zip(self.urls, self.clients, strict=True):
            commandstats = await client.info("commandstats")
            cpu = await client.info("cpu")
            memory = await client.info("memory")
            stats = await client.info("stats")
            found[url] = parse_snapshot(commandstats, cpu, memory, stats)
        return found

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


def _per_call(value: float, calls: int, digits: int = 1) -> float | None:
    return round(value / calls, digits) if calls else None


def cost_per_call(before: RedisSnapshot, after: RedisSnapshot, calls: int) -> dict[str, Any]:
    """Commands, command time, script time, CPU and retained memory per call between two snapshots."""
    empty = CommandCount(0, 0)
    spent = {
        name: CommandCount(
            count.calls - before.commands.get(name, empty).calls, count.usec - before.commands.get(name, empty).usec
        )
        for name, count in after.commands.items()
    }
    spent = {name: count for name, count in spent.items() if count.calls > 0}
    commands = sum(count.calls for count in spent.values())
    command_us = sum(count.usec for name, count in spent.items() if name not in SCRIPT_COMMANDS)
    script_us = sum(count.usec for name, count in spent.items() if name in SCRIPT_COMMANDS)
    top = sorted(spent.items(), key=lambda item: item[1].calls, reverse=True)[:TOP_COMMANDS]
    return {
        "calls": calls,
        "commands": commands,
        "commands_per_call": _per_call(commands, calls, 2),
        "command_us_per_call": _per_call(command_us, calls),
        "script_us_per_call": _per_call(script_us, calls),
        "cpu_us_per_call": _per_call((after.cpu_s - before.cpu_s) * 1e6, calls),
        # Of client sockets, this meter's own INFO reads included (4 per primary and snapshot).
        "reads_per_call": _per_call(after.reads - before.reads, calls, 2),
        "writes_per_call": _per_call(after.writes - before.writes, calls, 2),
        # What stays in Redis per call (result and record keys until their TTL), plus any queue growth.
        "memory_bytes_per_call": _per_call(after.used_memory - before.used_memory, calls, 0),
        "top": [
            {
                "command": name,
                "per_call": _per_call(count.calls, calls, 2),
                "us_per_call": _per_call(count.usec, calls, 2),
            }
            for name, count in top
        ],
    }
