"""Logging for the gateway and the worker: one JSON object per line, with the job and request in it.

The request id (a caller's `X-Request-ID`, or one the gateway makes) and the job id live in context
variables: the gateway sets the request id per HTTP request, it travels in the `Job`, and the worker
sets both for the task that runs the job, so every line logged about a job carries them without
each call site passing them along.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from service.config import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
# Attributes every LogRecord has; anything else was passed in `extra=` and is logged as a field.
RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for name, var in (("job_id", job_id), ("request_id", request_id)):
            value = var.get()
            if value is not None:
                line[name] = value
        for name, value in vars(record).items():
            if name not in RECORD_ATTRIBUTES:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(settings: Settings) -> None:
    """Root logger to stderr in the chosen format; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    level = logging.getLevelName(settings.log_level.upper())
    # `debug` is for our own lines (one per job); libraries stay at `info`, or their chatter drowns them.
    logging.basicConfig(level=max(level, logging.INFO), handlers=[handler], force=True)
    logging.getLogger("service").setLevel(level)
