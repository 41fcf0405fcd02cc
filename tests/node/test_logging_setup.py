"""--log-format json: one JSON object per line, with the fields operators filter on."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from node.logging_setup import JsonFormatter, RequestIdFilter, TextFormatter, request_id


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing to a buffer through the JSON formatter (the root logger is left alone)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("aitbc.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, out
    logger.removeHandler(handler)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_record_holds_time_level_logger_message_and_the_request_id(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    logger.warning("disk %s%% full", 91)
    token = request_id.set("trace-abc.123")
    try:
        logger.info("served")
    finally:
        request_id.reset(token)
    first, second = records(out)
    assert set(first) == {"time", "level", "logger", "message"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert first["level"] == "warning" and first["logger"] == "aitbc.test.json" and first["message"] == "disk 91% full"
    assert second["request_id"] == "trace-abc.123" and second["level"] == "info"


def test_structured_fields_are_kept_and_other_record_attributes_left_out(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    http = {"method": "GET", "path": "/health", "status": 200, "duration_ms": 0.4, "client": None}
    logger.info("GET /health 200", extra={"http": http, "color_message": "\x1b[32mGET\x1b[0m", "secret": "k"})
    logger.info("big", extra={"node": {"supply": 10**30}})  # beyond 64 bits
    access, big = records(out)
    assert access["http"] == http
    assert "color_message" not in access and "secret" not in access
    assert big["node"] == {"supply": 10**30}


def test_an_exception_is_a_field_of_the_same_line(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    try:
        raise ValueError("bad block")
    except ValueError:
        logger.exception("verify failed")
    (record,) = records(out)
    assert record["message"] == "verify failed" and record["level"] == "error"
    assert record["exception"].startswith("Traceback") and "ValueError: bad block" in record["exception"]


def test_a_decoded_path_cannot_write_a_line_of_its_own_or_control_the_terminal(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    path = '/x\n{"level": "error", "message": "forged"}\r\x1b[2J\x85\u2028\u2029\x7f\x9b café'
    logger.info("GET %s 404", path, extra={"http": {"path": path}})
    text = out.getvalue()
    assert text.endswith("\n") and len(text.splitlines()) == 1  # str.splitlines also breaks at \x85, U+2028/9
    line = text[:-1]
    assert not [c for c in line if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert "café" in line  # other text stays readable
    (record,) = records(out)
    assert record["http"]["path"] == path and record["message"] == f"GET {path} 404"


def test_text_lines_carry_the_request_id_on_their_first_line() -> None:
    record = logging.LogRecord("aitbc.access", logging.INFO, __file__, 1, "GET /health 200", None, None)
    record.request_id = "r1"
    line = TextFormatter().format(record)
    assert line.endswith(" INFO    aitbc.access: GET /health 200 [request_id=r1]")


def test_a_text_line_cannot_be_forged_or_carry_controls_from_a_request() -> None:
    path = "/nothing\n2026-12-02 17:00:00,000 ERROR aitbc.node: FORGED LINE\x00\x1b[2J\u2028\x85"
    record = logging.LogRecord("aitbc.access", logging.INFO, __file__, 1, "GET %s 404", (path,), None)
    line = TextFormatter().format(record)
    assert len(line.splitlines()) == 1 and "FORGED LINE" in line
    assert not [c for c in line if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert "\\u000a2026-12-02" in line and "\\u0000" in line and "\\u001b[2J" in line


def test_a_traceback_keeps_its_own_lines_after_the_escaped_message() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("aitbc.node", logging.ERROR, __file__, 1, "failed: %s", ("x\ny",), sys.exc_info())
    text = TextFormatter().format(record)
    first, *rest = text.splitlines()
    assert first.endswith("failed: x\\u000ay") and rest[0] == "Traceback (most recent call last):"
