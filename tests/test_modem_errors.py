"""Error tables: reasons and transient/permanent class; port errors name the fix."""

from __future__ import annotations

import errno

import pytest

from textback.modem.errors import AtError, port_error


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
