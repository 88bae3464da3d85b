"""JSON log lines for the sidecar: one object per line, fields passed as `extra={"fields": {...}}`.

Only what a caller puts in `fields` is logged: request bodies, headers and secrets never are.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure(logger_name: str = "webhook", level: int = logging.INFO) -> logging.Logger:
    """Give the sidecar's logger a JSON handler on stderr (once per process)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    # uvicorn's own handlers would print each line a second time, unformatted.
    logger.propagate = False
    return logger
