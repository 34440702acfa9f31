"""Abuse caps through the real CallPipeline, Store (SQLite on tmp_path) and Outbox, with a
clock the test moves: premium/shared-cost never texted, a burst from one prefix pauses it
and records one staff alert, per-country hourly caps; and a 10,000-call spoofed flood that
sends no more than the caps allow.

Numbers: ranges phonenumbers classifies as premium-rate (+1900, +4490, +3389), shared-cost
(+33844, +34901), mobile in allowed countries (+447400 GB, +49151 DE, US geographic) and
mobile in countries not allowed (+234 NG, +371 LV, a common SMS-pumping destination).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.daemon_fakes import Clock
from textback.config import Config, parse_config
from textback.outbound import call_record
from textback.outbound.alerts import ALERT_KIND, alert_bursts
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.outbound.policy import number_country, number_prefix
from textback.pbx.outcome import CallOutcome
from textback.store import Store

NOW = 1_800_000_000.0
DID = "+12125550100"
STAFF = ("+12125550101", "+12125550102")

CONFIG = """\
[pbx]
type = "asterisk"
secret = "x"
[sip]
destination = "pjsip:trunk/sip:{{number}}@127.0.0.1:5180"
[policy]
send_delay_s = 0
allowed_countries = ["US", "GB", "DE"]
global_hour_cap = {global_cap}
prefix_hour_cap = 20
caller_day_cap = 3
burst_calls = {burst_calls}
burst_window_min = {burst_window}
burst_pause_min = {burst_pause}
country_hour_caps = {{ "US" = {us_cap}, "GB" = 15, "*" = 5 }}
[[did]]
number = "{did}"
business = "Acme"
[did.staff]
sms = ["{staff0}", "{staff1}"]
[hours]
timezone = "America/New_York"
[store]
path = "{store}"
"""


def make_config(tmp: Path, *, global_cap: int = 70, us_cap: int = 60, burst_calls: int = 8,
                burst_window: float = 5, burst_pause: float = 30) -> Config:
    text = CONFIG.format(global_cap=global_cap, us_cap=us_cap, burst_calls=burst_calls,
                         burst_window=burst_window, burst_pause=burst_pause, did=DID,
                         staff0=STAFF[0], staff1=STAFF[1], store=tmp / "t.db")
    return parse_config(text, tmp / "t.toml", check_permissions=False)


def missed(call: str, caller: str, at: float) -> CallOutcome:
    return CallOutcome(call=call, direction="inbound", caller=caller, withheld=False, did=DID,
                       verdict="missed", reason="noanswer", ring_s=20.0, started_at=at - 20,
                       ended_at=at)


@asynccontextmanager
async def rig(tmp: Path, **kw: Any) -> AsyncIterator[tuple[CallPipeline, Store, Clock]]:
    config = make_config(tmp, **kw)
    store = await Store.open(tmp / "t.db")
    clock = Clock(NOW)
    try:
        yield CallPipeline(store, Outbox(store, config=config), config, clock=clock), store, clock
    finally:
        await store.close()


async def texts(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.fetchall(
        "SELECT o.number, o.created_at, c.country FROM outbox o JOIN calls c "
        "ON c.call_id = o.call_id WHERE o.kind = 'textback' ORDER BY o.created_at, o.id")]


async def test_premium_and_shared_cost_are_never_texted(tmp_path: Path) -> None:
    async with rig(tmp_path) as (pipe, store, clock):
        cases = {"+19002345678": "premium-rate", "+449012345678": "premium-rate",
                 "+33891123456": "premium-rate", "+33844123456": "shared-cost",
                 "+34901123456": "shared-cost", "+2348031234567": "country-not-allowed",
                 "+447400123456": None}
        for i, (number, reason) in enumerate(cases.items()):
            clock.t += 60
            handled = await pipe.handle(missed(f"p{i}", number, clock.t))
            assert handled.reason == reason, number
        assert [t["number"] for t in await texts(store)] == ["+447400123456"]


async def test_burst_pauses_the_prefix_and_records_one_alert(tmp_path: Path) -> None:
    async with rig(tmp_path, burst_calls=4, burst_window=10, burst_pause=30) as (
            pipe, store, clock):
        prefix = "+1646707"
        results = []
        for i in range(6):
            clock.t += 60
            results.append(await pipe.handle(missed(f"b{i}", f"{prefix}{i:04d}", clock.t)))
        assert [r.action for r in results[:3]] == ["queued"] * 3
        assert results[3].reason == "burst"
        assert [r.reason for r in results[4:]] == ["burst-paused", "burst-paused"]
        call = await call_record.call(store, "b3")
        assert call is not None and "4 missed calls from +1646707" in call["skip_detail"]
        # another prefix is not affected
        clock.t += 1
        assert (await pipe.handle(missed("o1", "+16469871234", clock.t))).action == "queued"
        (pause,) = await call_record.burst_pauses(store)
        assert (pause.prefix, pause.call_id, pause.calls) == (prefix, "b3", 4)
        # the pipeline alerted staff when the burst paused the prefix (call b3)
        assert pause.until_at == NOW + 4 * 60 + 30 * 60 and pause.alerted_at == NOW + 4 * 60
        assert await call_record.burst_pauses(store, active_at=clock.t) == [pause]

        # staff are alerted once per pause, one SMS per staff number
        assert await alert_bursts(store, pipe.outbox, pipe.config, clock.t) == 0
        alerts = await store.fetchall("SELECT number, body FROM outbox WHERE kind LIKE ?",
                                      (f"{ALERT_KIND}:%",))
        assert sorted(a["number"] for a in alerts) == sorted(STAFF)
        assert all("4 missed calls from +1646707" in a["body"] for a in alerts)

        # still paused just before the end, texted again once it ended and the window is quiet
        clock.t = pause.until_at - 1
        assert (await pipe.handle(missed("b6", f"{prefix}0006", clock.t))).reason == \
            "burst-paused"
        clock.t = pause.until_at + 1
        assert (await pipe.handle(missed("b7", f"{prefix}0007", clock.t))).action == "queued"


async def test_burst_detection_can_be_switched_off(tmp_path: Path) -> None:
    async with rig(tmp_path, burst_calls=0) as (pipe, store, clock):
        for i in range(12):
            clock.t += 10
            assert (await pipe.handle(missed(f"b{i}", f"+1646707{i:04d}", clock.t))).action \
                == "queued"
        assert await call_record.burst_pauses(store) == []


async def test_country_hour_caps(tmp_path: Path) -> None:
    async with rig(tmp_path) as (pipe, _store, clock):
        de = [await pipe.handle(missed(f"d{i}", f"+4915112345{i:03d}", clock.t + i))
              for i in range(7)]  # "*" = 5 applies to DE
        assert [h.action for h in de].count("queued") == 5
        assert {h.reason for h in de if h.action == "skipped"} == {"cap-country-hour"}
        # GB has its own cap (15) and is not touched by DE's texts
        assert (await pipe.handle(missed("g0", "+447400123456", clock.t + 10))).action == \
            "queued"
        clock.t += 3601  # an hour later DE may be texted again
        assert (await pipe.handle(missed("d9", "+4915112399999", clock.t))).action == "queued"


async def test_flood_of_10000_spoofed_calls_sends_no_more_than_the_caps(
        tmp_path: Path) -> None:
    rng = random.Random(6)
    burst_prefixes = ["+1646707", "+1310987"]

    def spoofed() -> str:
        roll = rng.random()
        if roll < 0.30:  # premium rate, US / GB / FR
            prefix, digits = rng.choice([("+1900234", 4), ("+449012", 6), ("+338911", 5)])
            return prefix + str(rng.randrange(10**digits)).zfill(digits)
        if roll < 0.40:  # shared cost, FR / ES
            return rng.choice(["+33844", "+34901"]) + f"{rng.randrange(10**6):06d}"
        if roll < 0.65:  # mobiles in countries not allowed (NG, LV)
            return rng.choice(["+234803" + f"{rng.randrange(10**7):07d}",
                               "+37126" + f"{rng.randrange(10**6):06d}"])
        if roll < 0.78:
            return "+447400" + f"{rng.randrange(10**6):06d}"  # GB mobiles
        if roll < 0.83:
            return "+49151" + f"{rng.randrange(10**8):08d}"  # DE mobiles
        if roll < 0.93:  # a hammered US prefix
            return rng.choice(burst_prefixes) + f"{rng.randrange(10**4):04d}"
        area = rng.choice(["212", "415", "617", "305", "713"])  # US numbers, many prefixes
        return f"+1{area}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"

    calls = 10_000
    step = 0.72  # 10,000 calls in two hours
    async with rig(tmp_path) as (pipe, store, clock):
        policy = pipe.config.policy
        for i in range(calls):
            clock.t = NOW + i * step
            await pipe.handle(missed(f"f{i}", spoofed(), clock.t))
        await alert_bursts(store, pipe.outbox, pipe.config, clock.t)

        sent = await texts(store)
        skips = Counter(r["skip_reason"] for r in await store.fetchall(
            "SELECT skip_reason FROM calls WHERE decision = 'skip'"))
        decided = await store.fetchone("SELECT count(*) AS n FROM calls WHERE decision "
                                       "IS NOT NULL")
        assert decided is not None and decided["n"] == calls  # every call decided
        assert len(sent) + sum(skips.values()) == calls
        assert skips["invalid-number"] == 0  # the generator makes valid numbers only
        # every cap bit, and texts still went to eligible numbers
        for reason in ("premium-rate", "shared-cost", "country-not-allowed", "burst",
                       "burst-paused", "cap-country-hour", "cap-global-hour"):
            assert skips[reason] > 0, (reason, skips)
        assert sent

        # premium, shared-cost and foreign-not-allowed: nothing at all
        for t in sent:
            assert t["country"] in policy.allowed_countries
            assert not t["number"].startswith(("+1900", "+4490", "+3389", "+33844", "+34901",
                                               "+234", "+371"))
        assert len({t["number"] for t in sent}) == len(sent)  # cooldown: one per number

        # sliding hour windows ending at each text: global, per country, per prefix
        for i, t in enumerate(sent):
            window = [u for u in sent[: i + 1] if u["created_at"] > t["created_at"] - 3600]
            assert len(window) <= policy.global_hour_cap
            per_country = Counter(u["country"] for u in window)
            for country, n in per_country.items():
                cap = policy.country_hour_cap(country)
                assert cap is not None and n <= cap, (country, n)
            per_prefix = Counter(number_prefix(u["number"], policy.prefix_digits)
                                 for u in window)
            assert max(per_prefix.values()) <= policy.prefix_hour_cap
        hours = (calls * step) / 3600
        assert len(sent) <= policy.global_hour_cap * (int(hours) + 1)

        # burst: no text from a prefix while it is paused, nor once it had burst_calls
        # missed calls within the window; one alert per pause and staff number
        pauses = await call_record.burst_pauses(store)
        assert {p.prefix for p in pauses} >= set(burst_prefixes)
        by_prefix: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for p in pauses:
            assert p.calls >= policy.burst_calls and p.alerted_at is not None
            spans = by_prefix[p.prefix]
            assert all(p.started_at >= end for _, end in spans)  # pauses never overlap
            spans.append((p.started_at, p.until_at))
        for t in sent:
            prefix = number_prefix(t["number"], policy.prefix_digits)
            assert not any(a <= t["created_at"] < b for a, b in by_prefix.get(prefix, []))
        call_times = [dict(r) for r in await store.fetchall(
            "SELECT caller, decided_at FROM calls ORDER BY decided_at")]
        for prefix in burst_prefixes:
            times = [c["decided_at"] for c in call_times if c["caller"].startswith(prefix)]
            for t in sent:
                if t["number"].startswith(prefix):
                    recent = [x for x in times
                              if t["created_at"] - policy.burst_window_s < x <= t["created_at"]]
                    assert len(recent) < policy.burst_calls
        alerts = await store.fetchall("SELECT number FROM outbox WHERE kind LIKE ?",
                                      (f"{ALERT_KIND}:%",))
        assert len(alerts) == len(pauses) * len(STAFF)
        assert all(number_country(a["number"]) == "US" for a in alerts)
