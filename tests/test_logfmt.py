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


# --- issue 16 item 2: journald priorities and key=value on every line

import io  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from textback.logfmt import setup_logging  # noqa: E402


def _emit_all(stream: object, environ: dict[str, str]) -> list[str]:
    setup_logging("DEBUG", stream=stream, environ=environ)
    try:
        lg = logging.getLogger("textback.test16")
        log(lg, logging.DEBUG, "dbg")
        log(lg, logging.INFO, "inf", n=1)
        log(lg, logging.WARNING, "warn")
        log(lg, logging.ERROR, "err")
        lg.warning("free text from %s", "a library")  # e.g. panoramisk, asyncio
        try:
            raise ValueError("boom\nevent=forged")
        except ValueError:
            lg.exception("crashed")
    finally:
        logging.getLogger().handlers.clear()
    return stream.getvalue().splitlines() if isinstance(stream, io.StringIO) else []


def test_journal_stream_lines_carry_sd_daemon_priorities(tmp_path: Path) -> None:
    """stderr is the journal (JOURNAL_STREAM names its device:inode): `<N>` prefixes, so
    `journalctl -p warning` shows warnings and errors only."""
    path = tmp_path / "journal"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        _emit_all(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<4>", "<3>"]
    assert lines[1] == "<6>event=inf level=info logger=textback.test16 n=1"


def test_no_prefix_when_stderr_is_not_the_journal() -> None:
    """JOURNAL_STREAM inherited by a child whose stderr is elsewhere: no `<N>`."""
    lines = _emit_all(io.StringIO(), {"JOURNAL_STREAM": "1:2"})
    assert lines[2] == "event=warn level=warning logger=textback.test16"


def test_every_line_is_key_value_with_an_event() -> None:
    lines = _emit_all(io.StringIO(), {})
    assert len(lines) == 6  # a traceback stays on its own line, escaped
    assert all(line.startswith("event=") for line in lines)
    assert lines[4] == ('event=log level=warning logger=textback.test16 '
                        'text="free text from a library"')
    assert lines[5].startswith('event=log level=error logger=textback.test16 text=crashed exc=')
    assert "ValueError: boom\\nevent=forged" in lines[5]


def test_textback_code_has_no_free_text_log_calls() -> None:
    """Every log call in textback/ goes through logfmt.log (event name + key=value)."""
    import re

    root = Path(__file__).resolve().parents[1] / "textback"
    free = re.compile(r"\b(?:log|logger|_log)\.(?:debug|info|warning|error|exception|critical)\(")
    found = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if free.search(line)]
    assert found == []


def test_every_logged_event_is_documented() -> None:
    """docs/logging.md names every event= the code can write."""
    import re

    repo = Path(__file__).resolve().parents[1]
    doc = (repo / "docs" / "logging.md").read_text()
    pattern = re.compile(r"log\(\s*\w+,\s*logging\.[A-Z]+,\s*\"([a-z_]+)\"")
    events = {m for p in (repo / "textback").rglob("*.py")
              for m in pattern.findall(p.read_text())}
    assert len(events) > 40
    assert sorted(e for e in events if f"`{e}`" not in doc) == []
