"""Log setup shared by the API server and the workers: text for people, JSON lines for log
pipelines, and in both the build a line belongs to when it is known.

The build context lives in a contextvar that the activity interceptor sets (interceptors.py);
``asyncio.to_thread`` copies contextvars, so lines an executor writes from its step thread carry
the image ARN and step too.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

FORMATS = ("text", "json")
#: Build context keys, in the order they are shown.
CONTEXT_KEYS = ("image_arn", "stage", "step", "action", "executor")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_build: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("imagebuilder_build_context", default={})  # noqa: B039


@contextmanager
def build_context(**fields: str) -> Iterator[None]:
    """Lines logged inside (in this task or threads it starts) name this build and step."""
    token = _build.set({**_build.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _build.reset(token)


def current_build_context() -> dict[str, str]:
    return dict(_build.get())


class BuildContextFilter(logging.Filter):
    """Copies the build context onto each record (explicit ``extra=`` values win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _build.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, message, build context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, plus ``[image=... step=...]`` when the line belongs to a build."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = [f"{k}={getattr(record, k)}" for k in ("image_arn", "step") if getattr(record, k, None)]
        return f"{text} [{' '.join(context)}]" if context else text


def configure_logging(level: str, log_format: str = "text") -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    if log_format not in FORMATS:
        raise SystemExit(
            f"imagebuilder: --log-format (or IMAGEBUILDER_LOG_FORMAT) must be text or json, not {log_format!r}"
        )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise SystemExit(f"imagebuilder: --log-level must be debug, info, warning or error, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(BuildContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
