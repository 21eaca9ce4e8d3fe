"""A worker's `/metrics`: a minimal HTTP/1.0 responder on the worker's own event loop.

Prometheus only ever sends `GET /metrics`; answering it on the loop needs no thread and no web
framework, and rendering the registry takes well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST

from service import metrics

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request_line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        method, path, *_ = [*request_line.decode("latin-1").split(), "", ""]
        if method == "GET" and path.split("?", 1)[0] == "/metrics":
            status, body, content_type = "200 OK", metrics.exposition(metrics.WORKER), CONTENT_TYPE_LATEST
        else:
            status, body, content_type = "404 Not Found", b"only /metrics here\n", "text/plain"
        head = f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def metrics_server(host: str, port: int) -> AsyncIterator[None]:
    """Serve `/metrics` on host:port while the block runs; port 0 serves nothing."""
    if port == 0:
        yield
        return
    server = await asyncio.start_server(answer, host, port)
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
