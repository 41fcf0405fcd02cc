"""Logging: human-readable text (the default) or one JSON object per line (`--log-format json`).

Every record logged while a request is served carries that request's id (set by
api.middleware through `request_id`), so an operator can follow one request. Nothing here
logs request bodies, query strings or headers: prompts, results and keys never reach a log.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["text", "json"]
LOG_FORMATS = ("text", "json")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("aitbc_request_id", default=None)
"""The id of the request being served in this context, if any."""

EXTRA_FIELDS = ("http", "progress", "node")
"""Structured fields that records may carry (logger.info(..., extra={"http": {...}}))."""

JSON_FIELDS = frozenset(("time", "level", "logger", "message", "request_id", *EXTRA_FIELDS, "exception"))

UNSAFE_IN_A_LINE = re.compile("[\x7f-\x9f\u2028\u2029]")
"""What JSON leaves unescaped yet a reader may take as a line break or a terminal control."""
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Every control character, and the Unicode line and paragraph separators."""


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def escape_controls(text: str, unsafe: re.Pattern[str] = CONTROLS) -> str:
    """text with each `unsafe` character written as \\uXXXX: a logged request path or header
    cannot start a line of its own, forge one, or send the terminal an escape sequence."""
    return unsafe.sub(_escape, text) if unsafe.search(text) else text


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """One line per record (a traceback follows on lines of its own): the message's control
    characters are escaped, since its arguments may come from a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        if rid:
            first, sep, rest = text.partition("\n")
            text = f"{first} [request_id={rid}]{sep}{rest}"
        return text


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id, the EXTRA_FIELDS, exception.

    Other attributes a record carries (uvicorn's color_message, say) are left out.
    Bench: `python -m bench logs_and_progress`.
    """

    converter: Callable[[float | None], time.struct_time] = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message", "request_id", *EXTRA_FIELDS],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "exc_info": "exception"},
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = log_data["level"].lower()
        return {k: v for k, v in log_data.items() if v is not None and k in JSON_FIELDS}

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            line = super().jsonify_log_record(log_data)
        except TypeError:  # orjson refuses integers beyond 64 bits; the standard library does not
            line = json.dumps(log_data, default=str, ensure_ascii=False)
        # JSON escapes C0 controls; the other characters a reader may take as a line break or a
        # terminal control (DEL, C1, U+2028/9) are escaped here, so a logged path stays on its line.
        return line if line.isascii() else escape_controls(line, UNSAFE_IN_A_LINE)


def configure_logging(level: str = "info", fmt: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Send every log record (ours and uvicorn's) to stream (stderr) in the chosen format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Our access log (aitbc.access) replaces uvicorn's: it carries the request id.
    logging.getLogger("uvicorn.access").disabled = True
