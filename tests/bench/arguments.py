"""`sandpit bench`'s command line, parsed as the CLI parses it, for tests of what it chooses."""

from __future__ import annotations

import argparse

from service.bench.arguments import add_bench_arguments


def bench_arguments(*argv: str) -> argparse.Namespace:
    """The options `argv` gives; a bad value raises `argparse.ArgumentError` instead of exiting."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_bench_arguments(parser)
    return parser.parse_args(argv)
