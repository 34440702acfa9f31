"""The request handlers: read with ``deps.reader``, change through the owners' APIs, audit
every change, answer a form with a redirect (303) to a page that says what happened.

The session and the CSRF token were checked by the middleware (``textback.web.server``)
before any handler here runs; ``request[USER]`` is the logged-in user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from textback import webhooks
from textback.inbound.optout import set_opt_out
from textback.logfmt import log
from textback.numbers import to_e164
from textback.outbound.followups import cancel_follow_ups
from textback.report import OUTCOMES, dashboard_from, opted_out, per_call
from textback.web import audit, pages, queries
from textback.web import strings as S
from textback.web.deps import WebDeps
from textback.web.html import Markup

_logger = logging.getLogger("textback.web")
DEPS: web.AppKey[WebDeps] = web.AppKey("deps", WebDeps)
USER: web.RequestKey[str] = web.RequestKey("user", str)  # set by the session middleware
CSRF: web.RequestKey[str] = web.RequestKey("csrf", str)
FRAGMENT = "X-Fragment"
REASON_LIMIT = 200
# a dashboard is computed at most this often per (period, line); an outcome marked in the
# inbox clears it, so what staff just did shows at once
DASHBOARD_CACHE_S = 10.0
MAX_STREAMS = 4  # live-update streams per session (tabs); each polls once a second


def deps(request: web.Request) -> WebDeps:
    return request.app[DEPS]


def html(body: Markup, status: int = 200) -> web.Response:
    return web.Response(text=str(body), status=status, content_type="text/html",
                        charset="utf-8")


def back(path: str, note: str | None = None, detail: object = None) -> web.HTTPSeeOther:
    query = {k: str(v) for k, v in (("note", note), ("detail", detail)) if v is not None}
    return web.HTTPSeeOther(path + ("?" + urlencode(query) if query else ""))


def _note(request: web.Request) -> tuple[str | None, str | None]:
    key = request.query.get("note")
    detail = request.query.get("detail")
    return (key if key in S.NOTES else None), (detail[:300] if detail else None)


async def _audit(request: web.Request, action: str, target: str | None,
                 detail: str | None = None) -> None:
    d = deps(request)
    await audit.record(d.store, actor=request[USER], action=action, target=target,
                       detail=detail, at=d.clock())
    log(_logger, logging.INFO, "web_change", user=request[USER], action=action, target=target)


# ------------------------------------------------------------------ inbox


async def inbox(request: web.Request) -> web.Response:
    d = deps(request)
    items = await queries.inbox(d.reader)
    if request.headers.get(FRAGMENT) == "live":
        return html(pages.inbox_list(items, d.zone, d.line))
    return html(pages.inbox(items, d.zone, d.line, user=request[USER], csrf=request[CSRF]))


def _conversation_id(request: web.Request) -> int:
    try:
        return int(request.match_info["cid"])
    except ValueError:
        raise web.HTTPNotFound(text=S.NOT_FOUND) from None


async def _view(request: web.Request) -> queries.ConversationView:
    view = await queries.conversation(deps(request).reader, _conversation_id(request))
    if view is None:
        raise web.HTTPNotFound(text=S.NOT_FOUND)
    return view


async def conversation(request: web.Request) -> web.Response:
    d = deps(request)
    view = await _view(request)
    zone = d.zone(view.did)
    await d.desk.mark_read(view.id, d.clock())  # shown now, live part or whole page
    if request.headers.get(FRAGMENT) == "live":
        return html(pages.thread(view, zone))
    key, detail = _note(request)
    writable = d.config.did(view.did) is not None
    if not writable and key is None:
        key = "no-line"
    history = await audit.recent(d.reader, 20, target=view.number)
    return html(pages.conversation(view, zone, user=request[USER], csrf=request[CSRF],
                                   note_key=key, detail=detail, writable=writable,
                                   history=history))


async def reply(request: web.Request) -> web.Response:
    d = deps(request)
    view = await _view(request)
    here = f"/c/{view.id}"
    did = d.config.did(view.did)
    if did is None:
        raise back(here, "no-line")
    form = await request.post()
    body = str(form.get("body", "")).strip()
    if not body:
        raise back(here, "reply-empty")
    if len(body) > pages.REPLY_LIMIT:
        raise back(here, "reply-too-long")
    if view.review is not None:  # as staff.py: no relay while a possible opt-out waits
        raise back(here, "reply-review")
    now = d.clock()
    result = await d.outbox.enqueue(call_id=None, kind="relay", number=view.number,
                                    did=did.number, body=body, senders=did.senders,
                                    not_before=now, now=now)
    if result.refused is not None:
        why = S.REFUSALS.get(result.refused,
                             f"{result.refused}" + (f" ({result.detail})" if result.detail
                                                    else ""))
        await _audit(request, "reply-refused", view.number, f"{result.refused}: {body}")
        raise back(here, "reply-refused", why)
    d.wake()
    await d.desk.replied(view.id, now)
    await _audit(request, "reply", view.number, f"outbox {result.id}: {body}")
    raise back(here, "reply-queued")


async def take_over(request: web.Request) -> web.Response:
    d = deps(request)
    view = await _view(request)
    n = await d.desk.take_over(view.id, request[USER], d.clock())
    await _audit(request, "take-over", view.number, f"conversation {view.id}, {n} stopped")
    raise back(f"/c/{view.id}", "taken-over", n)


async def hand_back(request: web.Request) -> web.Response:
    d = deps(request)
    view = await _view(request)
    n = await d.desk.hand_back(view.id, d.clock())
    await _audit(request, "hand-back", view.number, f"conversation {view.id}, {n} resumed")
    raise back(f"/c/{view.id}", "handed-back", n)


async def outcome(request: web.Request) -> web.Response:
    d = deps(request)
    view = await _view(request)
    value = str((await request.post()).get("outcome", ""))
    if value and value not in OUTCOMES:
        raise back(f"/c/{view.id}", "outcome-bad")
    now = d.clock()
    await d.desk.set_outcome(view.id, value or None, request[USER], now)
    if value:
        await webhooks.emit_conversation_outcome(_hooks(d), view.id, value,
                                                 by=request[USER], at=now)
    d.dashboards.clear()
    await _audit(request, "outcome", view.number, f"conversation {view.id}: {value or '-'}")
    raise back(f"/c/{view.id}", "outcome-saved")


async def review(request: web.Request) -> web.Response:
    d = deps(request)
    view = await _view(request)
    decision = str((await request.post()).get("decision", ""))
    if decision not in ("optout", "not-optout") or d.reviews is None:
        raise back(f"/c/{view.id}", "review-none")
    done = await d.reviews.decide(view.number, decision, f"web:{request[USER]}", d.clock())
    if not done:
        raise back(f"/c/{view.id}", "review-none")
    d.wake()
    await _audit(request, f"review-{decision}", view.number, f"conversation {view.id}")
    raise back(f"/c/{view.id}", f"review-{decision}")


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``change`` whenever what the page shows changed. Reads one small
    fingerprint on the read-only connection every ``live_poll_s``; never writes."""
    d = deps(request)
    number = None
    if "c" in request.query:
        try:
            row = await d.reader.fetchone("SELECT number FROM conversations WHERE id = ?",
                                          (int(request.query["c"]),))
        except ValueError:
            row = None
        if row is None:
            raise web.HTTPNotFound(text=S.NOT_FOUND)
        number = row["number"]
    key = request[CSRF]  # one per session
    if d.streams.get(key, 0) >= MAX_STREAMS:
        raise web.HTTPTooManyRequests(text=S.SLOW_DOWN, headers={"Retry-After": "10"})
    d.streams[key] = d.streams.get(key, 0) + 1
    try:
        return await _stream(request, d, number)
    finally:
        d.streams[key] -= 1
        if not d.streams[key]:
            del d.streams[key]


async def _stream(request: web.Request, d: WebDeps, number: str | None
                  ) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    last = await queries.change_mark(d.reader, number)
    quiet = 0.0
    try:
        await response.write(b"retry: 3000\n\n")
        while not d.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(d.stopping.wait(), d.live_poll_s)
            mark = await queries.change_mark(d.reader, number)
            if mark != last:
                last, quiet = mark, 0.0
                await response.write(b"event: change\ndata: 1\n\n")
            else:
                quiet += d.live_poll_s
                if quiet >= 15:  # keep proxies from closing an idle stream
                    quiet = 0.0
                    await response.write(b": keep-alive\n\n")
    except ConnectionResetError:  # the page was closed
        pass
    return response


# ------------------------------------------------------------------ dashboard, health


async def dashboard(request: web.Request) -> web.Response:
    d = deps(request)
    period = request.query.get("days", "30")
    if period not in S.PERIODS:
        period = "30"
    did = request.query.get("did") or None
    if did is not None and d.config.did(did) is None:
        did = None
    now = d.clock()
    cached = d.dashboards.get((period, did))
    if cached is not None and 0 <= now - cached[0] < DASHBOARD_CACHE_S:
        body = cached[1]
    else:
        since = None if period == "all" else now - int(period) * 86400.0
        rows = await per_call(d.reader, since=since, did=did)
        # the grouping runs off the event loop: a long period must not delay a send
        board = await asyncio.to_thread(dashboard_from, rows, d.config.hours.timezone)
        body = pages.dashboard_body(board.as_dict(), period=period, did=did,
                                    dids=[(x.number, x.business) for x in d.config.dids])
        d.dashboards[(period, did)] = (now, body)
    return html(pages.dashboard(body, user=request[USER], csrf=request[CSRF]))


async def health(request: web.Request) -> web.Response:
    from textback.cli import status

    d = deps(request)
    now = d.clock()
    report = await status.gather(d.config.store.path, status.midnight(), now)
    if d.status_file is not None:
        report["daemon"] = status.read_live(d.status_file, now)
        report["status_file"] = str(d.status_file)
    verdict = status.assess(report, now)
    last = {r["sender"]: r["t"] for r in await d.reader.fetchall(
        "SELECT sender, max(sent_at) AS t FROM messages WHERE direction = 'out' "
        "AND sender IS NOT NULL GROUP BY sender")}
    return html(pages.health(report, verdict, user=request[USER], csrf=request[CSRF],
                             zone=d.config.hours.timezone, last_sends=last))


# ------------------------------------------------------------------ opt-outs


async def optouts(request: web.Request) -> web.Response:
    d = deps(request)
    query = request.query.get("q", "").strip()[:40]
    rows = await opted_out(d.reader)
    if query:
        digits = "".join(ch for ch in query if ch.isdigit())
        rows = [r for r in rows if digits and digits in r.number]
    key, detail = _note(request)
    return html(pages.optouts(rows, query=query, zone=d.config.hours.timezone,
                              user=request[USER], csrf=request[CSRF], note_key=key,
                              detail=detail))


async def _optout_form(request: web.Request) -> tuple[str, str]:
    d = deps(request)
    form = await request.post()
    raw = str(form.get("number", "")).strip()[:40]
    reason = " ".join(str(form.get("reason", "")).split())
    number = to_e164(raw, d.config.trunks.default_region)
    if number is None:
        raise back("/optouts", "optout-bad-number", raw)
    if not reason or len(reason) > REASON_LIMIT:
        raise back("/optouts", "optout-no-reason")
    return number, reason


def _hooks(d: WebDeps) -> Any:
    """The daemon's event hub (textback.webhooks), None when the app runs without one."""
    return getattr(d.daemon, "hooks", None)


async def optout_add(request: web.Request) -> web.Response:
    d = deps(request)
    number, reason = await _optout_form(request)
    if await opted_out(d.reader, number):
        raise back("/optouts", "optout-already", number)
    now = d.clock()
    note = f"{reason} (by {request[USER]})"
    await set_opt_out(d.store, number, True, now, "web", note=note)
    await webhooks.opt_changed(_hooks(d), number, True, did=None, message_id=None,
                               source="web", at=now)
    texts = await d.outbox.cancel_for_number(number, "opted-out", now)
    follow_ups = await cancel_follow_ups(d.store, number, "opted-out", now)
    await _audit(request, "optout-add", number,
                 f"{reason}; {texts} text(s), {follow_ups} follow-up(s) cancelled")
    raise back("/optouts", "optout-added", number)


async def optout_remove(request: web.Request) -> web.Response:
    d = deps(request)
    number, reason = await _optout_form(request)
    if not await opted_out(d.reader, number):
        raise back("/optouts", "optout-not-listed", number)
    now = d.clock()
    await set_opt_out(d.store, number, False, now, "web", note=f"{reason} (by {request[USER]})")
    await webhooks.opt_changed(_hooks(d), number, False, did=None, message_id=None,
                               source="web", at=now)
    await _audit(request, "optout-remove", number, reason)
    raise back("/optouts", "optout-removed", number)


def routes(app: web.Application) -> None:
    app.router.add_get("/", inbox)
    app.router.add_get("/c/{cid}", conversation)
    app.router.add_post("/c/{cid}/reply", reply)
    app.router.add_post("/c/{cid}/takeover", take_over)
    app.router.add_post("/c/{cid}/handback", hand_back)
    app.router.add_post("/c/{cid}/outcome", outcome)
    app.router.add_post("/c/{cid}/review", review)
    app.router.add_get("/events", events)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/health", health)
    app.router.add_get("/optouts", optouts)
    app.router.add_post("/optouts/add", optout_add)
    app.router.add_post("/optouts/remove", optout_remove)

