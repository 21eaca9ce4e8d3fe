"""Hello world per language: p50 through the service next to the same commands run bare.

`python -m service.bench.languages [LANGUAGE ...]` (`make bench-languages`) starts a local stack, sends
each language's hello world once to compile it (the compile cache serves the rest), then N more times
one after another, and runs the registry's own compile and run commands for it directly on this machine
(no sandbox, no service) as many times. One JSON line per language: the service's p50 (whole HTTP path
and the run stage alone) beside the bare p50, in one run on one machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from service.config import Settings
from service.languages import Invocation, LanguageSpec, registry
from service.models import Language
from service.stack import LocalStack, free_port

HELLO = {
    Language.python: 'print("Hello, world!")',
    Language.bash: 'echo "Hello, world!"',
    Language.cpp: '#include <cstdio>\nint main() { std::puts("Hello, world!"); }',
    Language.c: '#include <stdio.h>\nint main(void) { puts("Hello, world!"); return 0; }',
    Language.java: 'public class Main { public static void main(String[] a) { System.out.println("Hello, world!"); } }',
    Language.go: 'package main\nimport "fmt"\nfunc main() { fmt.Println("Hello, world!") }',
    Language.rust: 'fn main() { println!("Hello, world!"); }',
    Language.nodejs: 'console.log("Hello, world!");',
    Language.typescript: 'const greeting: string = "Hello, world!";\nconsole.log(greeting);',
    Language.php: 'echo "Hello, world!\\n";',
    Language.ruby: 'puts "Hello, world!"',
    Language.lua: 'print("Hello, world!")',
    Language.perl: 'print "Hello, world!\\n";',
    Language.csharp: 'class P { static void Main() { System.Console.WriteLine("Hello, world!"); } }',
    Language.R: 'cat("Hello, world!\\n")',
    Language.scala: 'object Main { def main(a: Array[String]): Unit = println("Hello, world!") }',
    Language.d: 'import std.stdio;\nvoid main() { writeln("Hello, world!"); }',
    Language.sql: "SELECT 'Hello, world!';",
}
BARE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
MEMORY_MB = 512


def p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def bare_p50_ms(spec: LanguageSpec, code: str, runs: int, compile_memory_mb: int) -> float:
    """The registry's commands for `code`, run in a scratch directory on this machine as they are."""
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, spec.source_path(code)).write_text(spec.source_text(code))
        env = {**BARE_ENV, "HOME": scratch}
        compile_argv = spec.compile_argv(Invocation(code, compile_memory_mb))
        if compile_argv is not None:
            subprocess.run(compile_argv, cwd=scratch, env=env, capture_output=True, check=True)
        argv = spec.run_argv(Invocation(code, MEMORY_MB))
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(argv, cwd=scratch, env=env, capture_output=True, check=True)
            samples.append((time.perf_counter() - started) * 1000)
    return p50_ms(samples)


def service_p50_ms(client: httpx.Client, language: Language, code: str, runs: int) -> tuple[float, float]:
    body = {"language": language.value, "code": code, "memory_mb": MEMORY_MB}
    client.post("/v1/execute", json=body)
    walls, stages = [], []
    for _ in range(runs):
        started = time.perf_counter()
        result = client.post("/v1/execute", json=body).json()
        walls.append((time.perf_counter() - started) * 1000)
        if result.get("status") != "ok" or result.get("stdout") != "Hello, world!\n":
            raise RuntimeError(f"{language.value}: {result}")
        stages.append(result["duration_ms"])
    return p50_ms(walls), p50_ms(stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("languages", nargs="*", help="languages to measure (default: every one installed)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    settings = Settings(port=free_port(), worker_concurrency=2)
    languages = registry(settings)
    chosen = [Language(name) for name in args.languages] or [lang for lang in languages.available() if lang in HELLO]
    with (
        LocalStack(settings, workers=1, redis_url_given=False) as stack,
        httpx.Client(base_url=stack.url, timeout=120) as client,
    ):
        for language in chosen:
            code = HELLO[language]
            wall, stage = service_p50_ms(client, language, code, args.runs)
            bare = bare_p50_ms(languages.spec(language), code, args.runs, settings.compile_memory_mb)
            line = {"language": language.value, "service_p50_ms": wall, "run_stage_p50_ms": stage, "bare_p50_ms": bare}
            print(orjson.dumps(line).decode(), flush=True)


if __name__ == "__main__":
    main()
