import logging

import pytest

from textback.logfmt import escape_value, kv, log


def test_plain_values_stay_bare() -> None:
    assert kv("call_decided", call="1795395183.0", verdict="missed") == \
        "event=call_decided call=1795395183.0 verdict=missed"


def test_hostile_values_cannot_forge_lines() -> None:
    line = kv("sms_in", body="ok\nevent=forged\r\x1a\x1b", caller="+1555\u202e")
    assert "\n" not in line and "\r" not in line and "\x1a" not in line and "\x1b" not in line
    assert "\u202e" not in line
    assert 'body="ok\\nevent=forged\\r\\u001a\\u001b"' in line


def test_secrets_masked_and_none() -> None:
    assert kv("login", user="textback", secret="s3cr3t", pin=1234) == \
        "event=login user=textback secret=*** pin=***"
    assert escape_value(None) == "-"
    assert escape_value("") == '""'
    assert escape_value("a b") == '"a b"'


def test_log_respects_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("textback.test")
    logger.setLevel(logging.WARNING)
    log(logger, logging.INFO, "hidden")
    log(logger, logging.WARNING, "shown", n=1)
    assert [r.getMessage() for r in caplog.records] == ["event=shown n=1"]
