"""Error tables: reasons and transient/permanent class; port errors name the fix."""

from __future__ import annotations

import errno

import pytest

from tests.conftest import REPO
from textback.modem.errors import (
    CMS_ERRORS,
    REJECTED,
    RETRY,
    SIM_CMS,
    SUBMIT_CMS,
    SUBMIT_SOURCES,
    UNCONFIRMED,
    AtError,
    after_submit,
    port_error,
    submit_table_markdown,
)


@pytest.mark.parametrize(("kind", "code", "transient", "word"), [
    ("CMS", 500, True, "network"), ("CMS", 330, False, "SMSC"), ("CMS", 38, True, "out of order"),
    ("CMS", 42, True, "congestion"), ("CMS", 304, False, "PDU"), ("CME", 11, False, "PIN"),
    ("CME", 14, True, "busy"), ("CMS", 9999, True, "manufacturer"),
])
def test_classes(kind: str, code: int, transient: bool, word: str) -> None:
    err = AtError(kind, code)
    assert err.transient is transient and word in err.reason


def test_plain_error_and_unsupported() -> None:
    assert AtError("ERROR").transient and "CMEE" in AtError("ERROR").reason
    assert not AtError("UNSUPPORTED").transient


@pytest.mark.parametrize(("no", "word", "transient"), [
    (errno.EACCES, "dialout", False), (errno.EBUSY, "ModemManager", True),
    (errno.ENOENT, "by-id", True),
])
def test_port_errors_name_the_fix(no: int, word: str, transient: bool) -> None:
    exc = port_error("/dev/ttyUSB2", OSError(no, "x"))
    assert word in str(exc) and exc.transient is transient and "/dev/ttyUSB2" in str(exc)
    assert "ID_MM_DEVICE_IGNORE" in str(port_error("/dev/x", OSError(errno.EBUSY, "busy")))


# ---------------------------------------------------------------- after the Ctrl-Z (issue 12)


def test_after_submit_only_listed_numeric_cms_codes_prove_nothing_went() -> None:
    assert after_submit(AtError("CMS", 42)) == RETRY
    assert after_submit(AtError("CMS", 304)) == REJECTED
    assert after_submit(AtError("CMS", 332)) == UNCONFIRMED
    for err in (AtError("CMS", 9999), AtError("CMS", 500), AtError("ERROR"),
                AtError("UNSUPPORTED"), AtError("CME", 30), AtError("CME", 10),
                AtError("CMS", None, "network timeout"), AtError("CMS", None, "42")):
        assert after_submit(err) == UNCONFIRMED, err


def test_submit_table_is_sourced_and_agrees_with_the_error_classes() -> None:
    """Every row names known sources; a code that proves nothing went is classed as before
    the Ctrl-Z (retry = transient, rejected = permanent), SIM codes wait for the SIM."""
    assert SUBMIT_CMS, "empty table"
    for code, (outcome, why, sources) in SUBMIT_CMS.items():
        assert outcome in (RETRY, REJECTED, UNCONFIRMED) and why, code
        assert sources.split() and all(s in SUBMIT_SOURCES for s in sources.split()), code
        if outcome == REJECTED:
            assert CMS_ERRORS[code][1] is False, code
        if outcome == RETRY and code not in SIM_CMS:
            assert CMS_ERRORS[code][1] is True, code
    # the codes whose meaning is "a copy may have gone" are never retried
    for code in (38, 197, 300, 332, 500, 513):
        assert SUBMIT_CMS[code][0] == UNCONFIRMED, code


def test_docs_show_the_table_from_errors_py() -> None:
    """docs/modem.md carries the table generated from SUBMIT_CMS, byte for byte."""
    doc = (REPO / "docs" / "modem.md").read_text()
    start = doc.index("<!-- submit-table:")
    start = doc.index("\n", start) + 1
    end = doc.index("<!-- /submit-table -->")
    assert doc[start:end] == submit_table_markdown()
