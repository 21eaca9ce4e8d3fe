"""`sandpit`: run the local stack, a gateway, a worker, or send one call to a server.

sandpit up [--workers N]            Redis + gateway + workers on this machine, Ctrl-C stops all
sandpit gateway                     the HTTP gateway (needs REDIS_URL)
sandpit worker                      one worker process (needs REDIS_URL)
sandpit run FILE | -c CODE          send a call to a server and print the result
sandpit bench [--url URL] [--quick]  measure latency, throughput and CPU (a local stack unless --url)
sandpit top [--url URL] [--once]    live view of the queue, throughput, latency and workers
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from service.bench.arguments import add_bench_arguments
from service.config import Settings, load_settings
from service.logs import configure_logging
from service.models import ExecutionResult, Language, Status

SUFFIXES = {".py": Language.python, ".sh": Language.bash, ".cpp": Language.cpp, ".cc": Language.cpp}
# Long-running services log in `log_format` (JSON by default); commands a person runs log text.
SERVICE_COMMANDS = {"gateway", "worker"}
# Asked of the kernel, which caps it at net.core.somaxconn: connections that arrive while the gateway is
# busy wait in this queue; when it is full the kernel drops them, and one never accepted before its
# handshake times out is reset.
GATEWAY_BACKLOG = 65535

log = logging.getLogger("service.cli")


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from service.stack import LocalStack

    stack = LocalStack(settings, workers=args.workers, redis_url_given="redis_url" in settings.model_fields_set)

    def stop(_signum: int, _frame: object) -> None:
        stack.request_stop()

    # Installed even when inherited as ignored: a shell starts background jobs with SIGINT ignored,
    # and Ctrl-C or a kill must still stop the stack, not orphan it.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def announce() -> None:
        print(f"sandpit is up at {stack.url} (redis {settings.redis_url}); Ctrl-C stops it", flush=True)

    try:
        return stack.serve(announce)
    finally:
        stack.stop()


def cmd_gateway(_: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.gateway.app import create_app
    from service.stack import allow_open_files, listen_backlog
    from service.tools.registry import ToolPackError

    open_files = allow_open_files()
    log.info(
        "gateway: up to %d open files (one per waiting connection), listen backlog %d",
        open_files,
        listen_backlog(GATEWAY_BACKLOG),
    )
    try:
        app = create_app(settings)
    except ToolPackError as exc:
        print(f"sandpit gateway: not starting: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        # uvicorn's loggers propagate to ours, so its lines come out in the same format.
        log_config=None,
        timeout_graceful_shutdown=int(settings.max_timeout_s + settings.compile_timeout_s),
        # Longer than clients keep idle connections (httpx 5 s, aiohttp 15 s): a server that closes one
        # first races the client's next request on it, which then fails with a reset.
        timeout_keep_alive=75,
        backlog=GATEWAY_BACKLOG,
    )
    return 0


def cmd_worker(_: argparse.Namespace, settings: Settings) -> int:
    from service.worker.main import run_worker

    run_worker(settings)
    return 0


def cmd_run(args: argparse.Namespace, _: Settings) -> int:
    from service.client import SandpitClient, SandpitError

    if args.code is not None:
        code, language = args.code, args.language or Language.python
    elif args.file is not None:
        path = Path(args.file)
        code = path.read_text()
        language = args.language or SUFFIXES.get(path.suffix)
        if language is None:
            print(f"cannot tell the language of {path}; pass --language", file=sys.stderr)
            return 2
    else:
        print("give a FILE or -c CODE", file=sys.stderr)
        return 2
    stdin = Path(args.stdin).read_text() if args.stdin else ""
    options = {"stdin": stdin, "timeout_s": args.timeout, "memory_mb": args.memory}
    with SandpitClient(args.url, api_key=args.api_key) as client:
        try:
            result = client.execute(language, code, **options)
        except SandpitError as exc:
            print(exc, file=sys.stderr)
            return 2
    _print_result(result, args.json)
    return 0 if result.status == Status.ok else 1


def cmd_new_key(args: argparse.Namespace, _: Settings) -> int:
    """A fresh API key, and the entry that stores only its digest in a keys file."""
    import json
    import secrets

    from service.gateway.auth import hash_key

    key = f"sp-{secrets.token_urlsafe(32)}"
    entry: dict[str, object] = {"name": args.name, "key_sha256": hash_key(key)}
    if args.max_in_flight is not None:
        entry["max_in_flight"] = args.max_in_flight
    if args.rate is not None:
        entry["rate_per_s"] = args.rate
    print(f"key (give it to the tenant; it is not stored): {key}", file=sys.stderr)
    print(json.dumps(entry))
    return 0


def cmd_top(args: argparse.Namespace, settings: Settings) -> int:
    from service.top import run_top

    return run_top(args, settings)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from service.bench.run import run_bench

    return run_bench(args, settings)


def _print_result(result: ExecutionResult, as_json: bool) -> None:
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(f"[{result.status} exit={result.exit_code} {result.duration_ms:.1f} ms]", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandpit", description="Sandboxed code execution for RL rollouts")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Redis, the gateway and workers locally")
    up.add_argument("--workers", type=int, default=1, help="worker processes (each runs SANDPIT_WORKER_CONCURRENCY)")
    up.set_defaults(handler=cmd_up)
    sub.add_parser("gateway", help="run the HTTP gateway").set_defaults(handler=cmd_gateway)
    sub.add_parser("worker", help="run one worker process").set_defaults(handler=cmd_worker)
    run = sub.add_parser("run", help="send a file or snippet to a server and print the result")
    run.add_argument("file", nargs="?", help="source file; the suffix picks the language")
    run.add_argument("-c", "--code", help="code to run instead of a file")
    run.add_argument("-l", "--language", choices=[lang.value for lang in Language])
    run.add_argument("--stdin", help="file to feed to the program's standard input")
    run.add_argument("--timeout", type=float, help="seconds")
    run.add_argument("--memory", type=int, help="MiB")
    run.add_argument("--url", default=os.environ.get("SANDPIT_URL", "http://127.0.0.1:8080"))
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.add_argument("--api-key", default=os.environ.get("SANDPIT_API_KEY"), help="or SANDPIT_API_KEY")
    run.set_defaults(handler=cmd_run)
    new_key = sub.add_parser("new-key", help="make an API key; prints the keys-file entry (digest only)")
    new_key.add_argument("name", help="tenant name")
    new_key.add_argument("--max-in-flight", type=int, help="unfinished jobs the tenant may have at once")
    new_key.add_argument("--rate", type=float, help="calls per second per gateway")
    new_key.set_defaults(handler=cmd_new_key)
    top = sub.add_parser("top", help="live view of queue depth, throughput, latency and workers")
    top.add_argument("--url", default=os.environ.get("SANDPIT_URL", "http://127.0.0.1:8080"), help="a gateway")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one snapshot and exit")
    top.set_defaults(handler=cmd_top)
    bench = sub.add_parser("bench", help="measure latency, throughput and CPU of a server")
    add_bench_arguments(bench)
    bench.set_defaults(handler=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    text = settings.model_copy(update={"log_format": "text"})
    configure_logging(settings if args.command in SERVICE_COMMANDS else text)
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
