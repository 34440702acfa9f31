"""The demo shows daemon log lines as a person reads them (issue 16 item 13): times, not raw
epochs; no logger plumbing. The call ids stay as the PBX wrote them."""

from __future__ import annotations

import time

import pytest

from textback.demo.__main__ import demo_line


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def test_epochs_become_times_and_ids_stay() -> None:
    line = ("event=text_queued level=info logger=textback.outbound.pipeline call=1795395183.0 "
            "did=+15559870000 number=+15551230001 outbox=1 template=business_hours parts=1 "
            "created=true not_before=1795395188.125")
    shown = demo_line(line)
    assert shown == ("event=text_queued call=1795395183.0 did=+15559870000 "
                     "number=+15551230001 outbox=1 template=business_hours parts=1 "
                     "created=true not_before=2026-11-23T00:53:08")


def test_errors_always_shown_and_dull_lines_not() -> None:
    assert demo_line("event=modem_urc level=debug logger=textback.modem port=x urc=RING") \
        is None
    assert demo_line('event=log level=error logger=asyncio text="boom"') == \
        'event=log level=error text="boom"'
