"""The web app against a seeded store, through aiohttp's test client: sessions, CSRF, the
login limit, escaping of hostile texts, replies through the outbound gate, take-over, outcomes,
possible opt-outs, the opt-out list, live updates, and the dashboard = the report."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.daemon_fakes import DID
from tests.report_seed import A, B
from tests.web_rig import PASSWORD, USER, login, web_rig
from textback.config import ConfigError, WebConfig, parse_config
from textback.report import build_report, dashboard
from textback.testing.lab_config import lab_config_toml
from textback.web import auth
from textback.web.server import SESSION_COOKIE, WebRefused, check_listen

HOSTILE = ('<script>alert("x")</script> "onmouseover=alert(1) x=" '
           "<img src=x onerror=alert(2)> \u202eevil\u202c &amp;")


# ------------------------------------------------------------------ sessions and CSRF


async def test_pages_need_a_session_and_the_cookie_is_httponly_strict(tmp_path: Path) -> None:
    async with web_rig(tmp_path, logged_in=False) as rig:
        answer = await rig.client.get("/", allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == "/login"
        logged = await login(rig.client)
        assert logged.status == 303
        cookie = next(c for c in logged.headers.getall("Set-Cookie")
                      if c.startswith(SESSION_COOKIE + "="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = await rig.client.get("/")
        assert page.status == 200 and "Inbox" in await page.text()
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        # the store holds a hash of the cookie, never the cookie
        token = cookie.split(";")[0].split("=", 1)[1]
        (row,) = await rig.rows("SELECT token_hash FROM web_sessions WHERE kind='session'")
        assert token not in row["token_hash"]


async def test_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(
        tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(A)
        before = await rig.rows("SELECT count(*) AS n FROM outbox")
        missing = await rig.client.post(f"/c/{cid}/reply", data={"body": "hi"})
        assert missing.status == 403 and "security token" in await missing.text()
        wrong = await rig.client.post(f"/c/{cid}/reply", data={"body": "hi", "csrf": "x" * 43})
        assert wrong.status == 403
        out = await rig.client.post("/optouts/add", data={"number": A, "reason": "r"})
        assert out.status == 403
        assert await rig.rows("SELECT count(*) AS n FROM outbox") == before
        assert await rig.rows("SELECT * FROM opt_outs WHERE number = ?", (A,)) == []
        # the login form has its own token, tied to a cookie
        rig.client.session.cookie_jar.clear()
        forged = await rig.client.post("/login", data={"user": USER, "password": PASSWORD,
                                                        "csrf": "forged"})
        assert forged.status == 403


async def test_login_limit_then_429_with_a_message(tmp_path: Path) -> None:
    async with web_rig(tmp_path, logged_in=False) as rig:
        for _ in range(5):
            bad = await login(rig.client, password="wrong password!")
            assert bad.status == 401 and "Wrong user name or password" in await bad.text()
        limited = await login(rig.client)  # even the right password now
        assert limited.status == 429
        assert "Too many failed logins" in await limited.text()
        assert int(limited.headers["Retry-After"]) > 0
        rig.clock.t += 301  # the failures age out
        assert (await login(rig.client)).status == 303


def test_login_limiter_counts_per_user_across_addresses_and_per_address() -> None:
    limiter = auth.LoginLimiter(max_failures=5, window_s=300)
    for i in range(5):
        assert limiter.retry_after(f"10.0.0.{i}", "bob", 100.0) == 0
        limiter.failed(f"10.0.0.{i}", "bob", 100.0)
    assert limiter.retry_after("10.0.0.99", "bob", 101.0) == pytest.approx(299.0)
    assert limiter.retry_after("10.0.0.99", "carol", 101.0) == 0
    for name in ("u1", "u2", "u3", "u4", "u5"):
        limiter.failed("192.0.2.7", name, 200.0)
    assert limiter.retry_after("192.0.2.7", "u6", 201.0) > 0
    assert limiter.retry_after("10.0.0.1", "bob", 401.0) == 0


async def test_login_link_works_once(tmp_path: Path) -> None:
    async with web_rig(tmp_path, logged_in=False) as rig:
        token = await auth.login_link(rig.store, USER, rig.clock())
        first = await rig.client.get(f"/login?token={token}", allow_redirects=False)
        assert first.status == 303 and first.headers["Location"] == "/"
        assert (await rig.client.get("/")).status == 200
        rig.client.session.cookie_jar.clear()
        again = await rig.client.get(f"/login?token={token}", allow_redirects=False)
        assert again.status == 403 and "used already" in await again.text()


async def test_logout_ends_the_session(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        answer = await rig.post("/logout", {}, follow=False)
        assert answer.status == 303
        assert await rig.rows("SELECT * FROM web_sessions WHERE kind = 'session'") == []


# ------------------------------------------------------------------ escaping


async def test_hostile_customer_texts_are_escaped_everywhere(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        await rig.inbound.receive(number=A, text=HOSTILE, did=DID, via="modem:a",
                                  at=rig.clock())
        cid = await rig.conversation_id(A)
        for path in ("/", f"/c/{cid}"):
            page = await (await rig.client.get(path)).text()
            assert "<script>alert" not in page and "<img src=x" not in page
            assert '"onmouseover=' not in page and "\u202e" not in page
            assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
            assert "\\u202eevil" in page  # the override shown, not obeyed
            assert "&amp;amp;" in page
        fragment = await (await rig.client.get(f"/c/{cid}",
                                               headers={"X-Fragment": "live"})).text()
        assert "<script>alert" not in fragment and "&lt;img src=x" in fragment


async def test_hostile_opt_out_note_and_urls_are_escaped(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        search = await (await rig.client.get('/optouts?q="><script>x()</script>')).text()
        assert "<script>x()" not in search and 'value="&quot;&gt;&lt;script&gt;' in search
        noted = await (await rig.client.get("/optouts?note=optout-added&detail=<svg onload=x>"
                                            )).text()
        assert "<svg onload" not in noted and "&lt;svg onload=x&gt; is on the" in noted
        unknown = await (await rig.client.get("/optouts?note=<b>hi</b>")).text()
        assert "<b>hi" not in unknown and "&lt;b&gt;hi" not in unknown  # unknown: not shown
        answer = await rig.post("/optouts/add", {"number": "+15551230077",
                                                 "reason": '<b>"x"</b>'})
        page = await answer.text()
        assert "<b>" not in page and "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in page


# ------------------------------------------------------------------ replies


async def test_reply_is_queued_through_the_gate_shown_at_once_and_audited(
        tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(A)
        answer = await rig.post(f"/c/{cid}/reply", {"body": "See you at 3pm"})
        page = await answer.text()
        assert answer.status == 200 and "Reply queued" in page
        assert re.search(r"See you at 3pm</bdi></p><span class=\"state state-queued\">queued",
                         page)
        (row,) = await rig.rows("SELECT * FROM outbox WHERE kind = 'relay'")
        assert (row["number"], row["did"], row["state"]) == (A, DID, "queued")
        assert rig.woken, "the dispatcher was not woken"
        inbox = await (await rig.client.get("/")).text()
        assert inbox.index("555-123-0001") < inbox.index("555-123-0002")  # answered: on top
        (entry,) = await rig.rows("SELECT * FROM audit WHERE action = 'reply'")
        assert entry["actor"] == USER and entry["target"] == A
        assert "See you at 3pm" in entry["detail"]


async def test_reply_to_an_opted_out_number_is_refused_with_the_reason(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(B)  # B texted STOP
        page = await (await rig.post(f"/c/{cid}/reply", {"body": "please?"})).text()
        assert "Not sent: the customer has opted out" in page
        (row,) = await rig.rows("SELECT * FROM outbox WHERE kind = 'relay'")
        assert (row["state"], row["cancel_reason"]) == ("skipped", "opted-out")
        assert "has opted out: nothing can be texted" in page


async def test_empty_and_too_long_replies_get_a_clear_message(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(A)
        assert "Write a reply first" in await (await rig.post(f"/c/{cid}/reply",
                                                              {"body": "  "})).text()
        long = await (await rig.post(f"/c/{cid}/reply", {"body": "x" * 1001})).text()
        assert "too long" in long
        assert await rig.rows("SELECT * FROM outbox WHERE kind = 'relay'") == []


# ------------------------------------------------------------------ desk


async def test_take_over_stops_follow_ups_and_hand_back_restarts_them(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        did = rig.config.did(DID)
        assert did is not None
        now = rig.clock()
        await rig.followups.schedule("c9", A, did, now, now, None, now)
        scheduled = await rig.rows("SELECT id FROM follow_ups WHERE call_id = 'c9' "
                                   "AND state = 'scheduled'")
        assert scheduled
        cid = await rig.conversation_id(A)
        page = await (await rig.post(f"/c/{cid}/takeover", {})).text()
        assert f"taken over this conversation; {len(scheduled)} follow-up(s)" in page
        assert "Taken over by alice" in page and "No automatic follow-up is pending" in page
        states = await rig.rows("SELECT state, cancel_reason FROM follow_ups "
                                "WHERE call_id = 'c9' AND touch > 1")
        assert {(r["state"], r["cancel_reason"]) for r in states} == {("cancelled",
                                                                      "taken-over")}
        # a touch scheduled later (another missed call) is refused while taken over
        await rig.followups.schedule("c10", A, did, now, now, None, now)
        assert await rig.followups._stop_reason("c10", A, DID) == "taken-over"
        page = await (await rig.post(f"/c/{cid}/handback", {})).text()
        assert "Handed back" in page
        again = await rig.rows("SELECT state FROM follow_ups WHERE call_id = 'c9' "
                               "AND touch > 1")
        assert {r["state"] for r in again} == {"scheduled"}
        actions = [r["action"] for r in await rig.rows("SELECT action FROM audit ORDER BY id")]
        assert actions == ["take-over", "hand-back"]
        history = page.split("What staff did", 1)[1]
        assert "alice: took over" in history and "alice: handed back" in history


async def test_outcome_is_stored_counted_by_the_report_and_validated(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(A)
        bad = await (await rig.post(f"/c/{cid}/outcome", {"outcome": "great"})).text()
        assert "Choose one of the outcomes" in bad
        page = await (await rig.post(f"/c/{cid}/outcome", {"outcome": "booked"})).text()
        assert "Outcome saved" in page and '<option value="booked" selected>' in page
        total = next(r for r in await build_report(rig.reader) if r.reason == "all")
        assert total.booked == 1
        inbox = await (await rig.client.get("/")).text()
        assert "Booked" in inbox


async def test_possible_optout_banner_and_its_two_decisions(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        await rig.inbound.receive(number=A, text="you need to stop", did=DID, via="modem:a",
                                  at=rig.clock())
        cid = await rig.conversation_id(A)
        page = await (await rig.client.get(f"/c/{cid}")).text()
        assert "may be an opt-out" in page and "you need to stop" in page
        assert 'value="optout"' in page and 'value="not-optout"' in page
        held = await (await rig.post(f"/c/{cid}/reply", {"body": "hello"})).text()
        assert "decide first" in held
        page = await (await rig.post(f"/c/{cid}/review", {"decision": "optout"})).text()
        assert "Opted out: nothing more" in page and "may be an opt-out" not in page
        (opt,) = await rig.rows("SELECT opted_out, source FROM opt_outs WHERE number = ?", (A,))
        assert (opt["opted_out"], opt["source"]) == (1, "staff-review")
        (review,) = await rig.rows("SELECT state, decided_by FROM optout_reviews")
        assert (review["state"], review["decided_by"]) == ("optout", f"web:{USER}")
        again = await (await rig.post(f"/c/{cid}/review", {"decision": "optout"})).text()
        assert "No possible opt-out was waiting" in again


# ------------------------------------------------------------------ opt-out list


async def test_opt_out_list_search_add_and_remove_with_reasons(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        page = await (await rig.client.get("/optouts")).text()
        assert "+1 555-123-0002" in page  # B, by keyword
        bad = await (await rig.post("/optouts/add", {"number": "call me", "reason": "x"})
                     ).text()
        assert "is not a phone number" in bad
        no_reason = await (await rig.post("/optouts/add", {"number": "555-123-0077",
                                                           "reason": " "})).text()
        assert "Give a reason" in no_reason
        added = await (await rig.post("/optouts/add", {"number": "(555) 123-0077",
                                                       "reason": "asked by phone"})).text()
        assert "+15551230077 is on the do-not-text list now" in added
        found = await (await rig.client.get("/optouts?q=0077")).text()
        assert "asked by phone (by alice)" in found and "+1 555-123-0002" not in found
        removed = await (await rig.post("/optouts/remove", {"number": "+15551230077",
                                                            "reason": "asked again"})).text()
        assert "was removed" in removed
        events = await rig.rows("SELECT action, source, note FROM opt_events "
                                "WHERE number = '+15551230077' ORDER BY id")
        assert [(e["action"], e["source"]) for e in events] == [("optout", "web"),
                                                                ("optin", "web")]
        audit = await rig.rows("SELECT actor, action, target, detail FROM audit ORDER BY id")
        assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
            (USER, "optout-add", "+15551230077"), (USER, "optout-remove", "+15551230077")]
        assert audit[1]["detail"] == "asked again"


# ------------------------------------------------------------------ live updates


async def test_a_new_reply_is_announced_on_the_event_stream(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(A)
        stream = await rig.client.get(f"/events?c={cid}")
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert await stream.content.readline() == b"retry: 3000\n"
        await stream.content.readline()
        await rig.inbound.receive(number=A, text="are you there?", did=DID, via="modem:a",
                                  at=rig.clock())
        async with asyncio.timeout(10):
            line = await stream.content.readline()
            while line.startswith(b":") or line == b"\n":  # keep-alives, blank lines
                line = await stream.content.readline()
        assert line == b"event: change\n"
        fragment = await (await rig.client.get(f"/c/{cid}",
                                               headers={"X-Fragment": "live"})).text()
        assert "are you there?" in fragment and "<html" not in fragment
        stream.close()


async def test_live_streams_per_session_are_capped(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        streams = [await rig.client.get("/events") for _ in range(4)]
        assert {s.status for s in streams} == {200}
        refused = await rig.client.get("/events")
        assert refused.status == 429 and refused.headers["Retry-After"] == "10"
        streams[0].close()
        async with asyncio.timeout(10):
            while (again := await rig.client.get("/events")).status != 200:
                await asyncio.sleep(0.1)
        again.close()
        for s in streams[1:]:
            s.close()


async def test_unread_counts_until_the_conversation_is_opened(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        inbox = await (await rig.client.get("/")).text()
        assert "1 unread" in inbox
        cid = await rig.conversation_id(A)
        await rig.client.get(f"/c/{cid}")
        rig.clock.t += 1
        await rig.client.get(f"/c/{await rig.conversation_id(B)}")
        assert "unread" not in (await (await rig.client.get("/")).text()).replace(
            "has-unread", "")


# ------------------------------------------------------------------ dashboard, health


async def test_dashboard_shows_the_reports_numbers(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        cid = await rig.conversation_id(A)
        await rig.post(f"/c/{cid}/outcome", {"outcome": "booked"})
        page = await (await rig.client.get("/dashboard?days=all")).text()
        board = (await dashboard(rig.reader, timezone=rig.config.hours.timezone)).as_dict()
        shown = dict(re.findall(r'data-step="(\w+)">(\d+)<', page))
        assert shown == {k: str(v) for k, v in board["funnel"].items()}
        assert shown["booked"] == "1" and shown["missed"] == "5"
        assert page.count("<svg") == 4 and "cooldown: 1" in page
        assert "15 s" in page  # the median hang-up to text
        other = await (await rig.client.get("/dashboard?days=all&did=%2B15559879999")).text()
        assert 'data-step="missed">5<' in other  # an unknown line is ignored, not an error


async def test_health_page_gives_the_status_verdict(tmp_path: Path) -> None:
    async with web_rig(tmp_path) as rig:
        rig.deps.status_file = tmp_path / "textback.db.status.json"
        page = await (await rig.client.get("/health")).text()
        assert "TEXTBACK CRITICAL - daemon not running" in page
        assert "Outbox" in page


# ------------------------------------------------------------------ config


def _web_config(tmp: Path, **web: object) -> WebConfig:
    text = lab_config_toml(store=tmp / "t.db", web=web)
    return parse_config(text, tmp / "t.toml", check_permissions=False).web


def test_web_config_defaults_and_off_loopback_rules(tmp_path: Path) -> None:
    conf = _web_config(tmp_path)
    assert (conf.enabled, conf.host, conf.port, conf.session_hours) == (False, "127.0.0.1",
                                                                        8025, 12.0)
    with pytest.raises(ConfigError, match="not a loopback address"):
        _web_config(tmp_path, enabled=True, listen="0.0.0.0:8025")
    with pytest.raises(ConfigError, match="needs TLS"):
        _web_config(tmp_path, enabled=True, listen="0.0.0.0:8025", allow_remote=True)
    proxied = _web_config(tmp_path, enabled=True, listen="192.0.2.5:8025", allow_remote=True,
                          behind_proxy=True)
    check_listen(proxied)
    with pytest.raises(ConfigError, match="together"):
        _web_config(tmp_path, tls_cert="cert.pem")
    with pytest.raises(ConfigError, match="host:port"):
        _web_config(tmp_path, listen="8025")
    v6 = _web_config(tmp_path, enabled=True, listen="[::1]:9000")
    assert (v6.host, v6.port) == ("::1", 9000)
    with pytest.raises(WebRefused):
        check_listen(WebConfig(enabled=True, host="0.0.0.0"))


async def test_user_store_rules(tmp_path: Path) -> None:
    async with web_rig(tmp_path, logged_in=False) as rig:
        with pytest.raises(auth.UserError, match="exists already"):
            await auth.add_user(rig.store, USER, "another long one", rig.clock())
        with pytest.raises(auth.UserError, match="too short"):
            await auth.add_user(rig.store, "bob", "short", rig.clock())
        with pytest.raises(auth.UserError, match="not a user name"):
            await auth.add_user(rig.store, "<bob>", "long enough pw", rig.clock())
        (row,) = await rig.rows("SELECT password_hash FROM web_users")
        assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row[
            "password_hash"]
        assert await auth.check_login(rig.store, USER, PASSWORD)
        assert not await auth.check_login(rig.store, USER, PASSWORD + "x")
        assert not await auth.check_login(rig.store, "nobody", PASSWORD)


def test_request_budget_allows_bursts_and_then_a_steady_rate() -> None:
    from textback.web.budget import RequestBudget

    budget = RequestBudget(rate=10.0, burst=3.0)
    assert [budget.take("s", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.take("s", 100.0) == pytest.approx(0.1)
    assert budget.take("other", 100.0) == 0.0  # per session
    assert budget.take("s", 100.11) == 0.0  # one token back after 1/rate s


async def test_a_session_fetching_in_a_loop_gets_429_with_retry_after(tmp_path: Path) -> None:
    from textback.web.budget import RequestBudget

    async with web_rig(tmp_path) as rig:
        rig.deps.budget = RequestBudget(rate=0.01, burst=5.0)
        statuses = [(await rig.client.get("/dashboard")).status for _ in range(8)]
        assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
        answer = await rig.client.get("/")
        assert answer.status == 429 and int(answer.headers["Retry-After"]) >= 1
        assert "Too many requests" in await answer.text()
        assert (await rig.client.get("/static/style.css")).status == 200  # not counted
