"""textback.report on a store written by the real pipeline, outbox and inbound handler."""

from __future__ import annotations

from pathlib import Path

from tests.daemon_fakes import DID, NOW
from tests.report_seed import A, B, C, seed
from textback.report import (
    ALL,
    build_report,
    conversations,
    opt_history,
    opted_out,
    parse_since,
    printable,
)
from textback.store import Store


async def test_report_per_did_and_reason(tmp_path: Path) -> None:
    config = await seed(tmp_path)
    store = await Store.open(config.store.path)
    try:
        rows = {(r.did, r.reason): r.as_dict() for r in await build_report(store)}
    finally:
        await store.close()
    assert list(rows) == [(DID, "busy"), (DID, "noanswer"), (DID, ALL)]
    busy = rows[(DID, "busy")]
    assert (busy["missed"], busy["texted"], busy["skipped"], busy["delivered"]) == (2, 2, 0, 0)
    assert (busy["replied"], busy["opted_out"], busy["called_back_answered"]) == (1, 1, 1)
    assert busy["median_text_s"] == 15.0 and busy["median_reply_s"] == 100.0
    noanswer = rows[(DID, "noanswer")]
    assert (noanswer["missed"], noanswer["texted"], noanswer["delivered"]) == (3, 1, 1)
    assert noanswer["skipped_by_reason"] == {"cooldown": 1, "withheld": 1}
    # c1 and c3 (same number) were both followed by the answered call a1; c4 had no number
    assert (noanswer["replied"], noanswer["opted_out"],
            noanswer["called_back_answered"]) == (1, 0, 2)
    assert noanswer["median_text_s"] == 5.0 and noanswer["median_reply_s"] == 60.0
    total = rows[(DID, ALL)]
    assert (total["missed"], total["texted"], total["skipped"], total["replied"]) == (5, 3, 2, 2)
    assert total["median_text_s"] == 15.0 and total["median_reply_s"] == 80.0
    # missed calls recovered from the PBX's own records after downtime, per DID and reason
    assert (busy["recovered"], noanswer["recovered"], total["recovered"]) == (1, 0, 1)


async def test_report_since_did_and_window(tmp_path: Path) -> None:
    config = await seed(tmp_path)
    store = await Store.open(config.store.path)
    try:
        late = await build_report(store, since=NOW + 150)
        assert [(r.reason, r.missed) for r in late] == [("busy", 1), ("noanswer", 1),
                                                        (ALL, 2)]
        assert await build_report(store, did="+15559879999") == []
        # outcomes beyond the attribution window do not count
        short = {r.reason: r for r in await build_report(store, window_s=50)}
        assert short[ALL].replied == 0 and short[ALL].called_back_answered == 0
    finally:
        await store.close()


async def test_conversations_and_opt_outs(tmp_path: Path) -> None:
    config = await seed(tmp_path)
    store = await Store.open(config.store.path)
    try:
        convs = await conversations(store)
        assert [c.number for c in convs] == [B, A]  # most recent activity first
        b = convs[0]
        assert b.opted_out and b.state == "open" and len(b.code) == 6
        assert [m.direction for m in b.messages] == ["out", "in", "out"]
        assert b.messages[1].body == "STOP" and "unsubscribed" in b.messages[2].body
        a = (await conversations(store, number=A, last=5))[0]
        assert [m.direction for m in a.messages] == ["out", "in"]
        assert a.messages[0].status == "delivered"
        assert await conversations(store, number=C) == []  # texted, never replied

        (stop,) = await opted_out(store)
        assert (stop.number, stop.source, stop.message) == (B, "keyword", "STOP")
        assert stop.at == NOW + 125
        assert [h.action for h in await opt_history(store, B)] == ["optout"]
    finally:
        await store.close()


def test_parse_since() -> None:
    assert parse_since("2027-01-15", "UTC") == 1_800_000_000 - 1_800_000_000 % 86400
    assert parse_since("2027-01-15", "America/New_York") == \
        parse_since("2027-01-15T05:00:00+00:00", "UTC")
    assert parse_since("2027-01-15T09:30", "UTC") - parse_since("2027-01-15", "UTC") == 34200
    for bad in ("yesterday", "2027-13-01", ""):
        try:
            parse_since(bad, "UTC")
        except ValueError as exc:
            assert "2026-03-01" in str(exc)
        else:
            raise AssertionError(bad)


def test_printable_escapes_terminal_controls() -> None:
    assert printable("hi\x1b[2J\r\nthere\u202e") == "hi\\u001b[2J\\u000d\\u000athere\\u202e"
    assert printable("x" * 10, 5) == "xxxx…" and printable(None) == ""
    assert printable("emoji 😀 ok") == "emoji 😀 ok"


async def _mark(store: Store, number: str, outcome: str, at: float) -> None:
    from textback.inbound.desk import Desk

    row = await store.fetchone("SELECT id FROM conversations WHERE number = ?", (number,))
    assert row is not None
    await Desk(store, None).set_outcome(row["id"], outcome, "alice", at)


async def test_outcomes_count_for_the_texted_calls_before_them(tmp_path: Path) -> None:
    """A's conversation marked booked counts once: for c1 (texted), not for c3 (skipped);
    B's "spam" counts for c2; nothing else is booked."""
    config = await seed(tmp_path)
    store = await Store.open(config.store.path)
    try:
        await _mark(store, A, "booked", NOW + 700)
        await _mark(store, B, "spam", NOW + 700)
        rows = {(r.did, r.reason): r.as_dict() for r in await build_report(store)}
        assert rows[(DID, "noanswer")]["booked"] == 1
        assert rows[(DID, "busy")]["outcomes"] == {"booked": 0, "callback-done": 0,
                                                  "not-a-lead": 0, "spam": 1}
        assert rows[(DID, ALL)]["booked"] == 1
        # marked again as not a lead: the booking no longer counts
        await _mark(store, A, "not-a-lead", NOW + 800)
        total = {r.reason: r for r in await build_report(store)}[ALL]
        assert total.booked == 0 and total.outcomes["not-a-lead"] == 1
    finally:
        await store.close()


async def test_dashboard_funnel_rates_and_days(tmp_path: Path) -> None:
    from textback.report import dashboard

    config = await seed(tmp_path)
    store = await Store.open(config.store.path)
    try:
        await _mark(store, A, "booked", NOW + 700)
        board = (await dashboard(store, timezone="America/New_York")).as_dict()
    finally:
        await store.close()
    assert board["funnel"] == {"missed": 5, "texted": 3, "replied": 2, "booked": 1}
    assert board["skipped_by_reason"] == {"cooldown": 1, "withheld": 1}
    assert board["median_text_s"] == 15.0
    # NOW is 2027-01-15 08:00 UTC = 03:00 in New York, a Friday: every call in that hour
    hour = {h["hour"]: h for h in board["reply_rate_by_hour"]}
    assert (hour[3]["texted"], hour[3]["replied"], hour[3]["rate"]) == (3, 2, 0.667)
    assert sum(h["texted"] for h in board["reply_rate_by_hour"]) == 3
    fri = board["reply_rate_by_weekday"][4]
    assert fri == {"weekday": "fri", "texted": 3, "replied": 2, "rate": 0.667}
    assert board["missed_per_day"] == [{"day": "2027-01-15", "missed": 5}]
