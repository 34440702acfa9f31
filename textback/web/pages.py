"""The pages' HTML, from data the handlers read: layout, login, inbox, conversation, dashboard,
health and the opt-out list. Pure functions (data in, :class:`Markup` out), so the escaping
can be tested without a server. Every word comes from :mod:`textback.web.strings`.

Accessibility: one ``<main>`` after a skip link, headings in order, every field with a
``<label>``, buttons that say what they do, focus order = reading order (no tabindex games),
states in words as well as colours, and a layout that stacks on a phone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from textback.inbound.staff import pretty_number
from textback.report import OUTCOMES, OptOut
from textback.web import strings as S
from textback.web.audit import AuditEntry
from textback.web.charts import columns, funnel
from textback.web.html import Markup, join, render
from textback.web.queries import ConversationView, InboxItem

REPLY_LIMIT = 1000


def when(at: float | None, zone: str, *, date: bool = True) -> str:
    if at is None:
        return S.NO_VALUE
    local = dt.datetime.fromtimestamp(at, tz=ZoneInfo(zone))
    return local.strftime("%Y-%m-%d %H:%M %Z" if date else "%H:%M")


def csrf_field(token: str) -> Markup:
    return render('<input type="hidden" name="csrf" value="{t}">', t=token)


def layout(title: str, body: Markup, *, user: str | None, csrf: str | None,
           active: str = "", live: str | None = None) -> Markup:
    """A whole page. ``live``: the URL of the live-update stream this page follows."""
    nav = Markup("")
    if user is not None and csrf is not None:
        links = [("/", S.NAV_INBOX, "inbox"), ("/dashboard", S.NAV_DASHBOARD, "dashboard"),
                 ("/health", S.NAV_HEALTH, "health"), ("/optouts", S.NAV_OPTOUTS, "optouts")]
        items = join(render('<li><a href="{href}"{cur}>{name}</a></li>', href=href, name=name,
                            cur=Markup(' aria-current="page"') if key == active else "")
                     for href, name, key in links)
        nav = render('<nav aria-label="Main"><ul>{items}</ul>'
                     '<form method="post" action="/logout" class="logout">{csrf}'
                     '<span class="who">{who}</span> <button type="submit">{logout}</button>'
                     '</form></nav>', items=items, csrf=csrf_field(csrf),
                     who=S.SIGNED_IN_AS.format(user=user), logout=S.LOGOUT)
    live_attr = render(' data-live="{u}"', u=live) if live else ""
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} \u2013 {app}</title><link rel="stylesheet" href="/static/style.css">'
        '<script src="/static/app.js" defer></script></head>'
        '<body><a class="skip" href="#main">{skip}</a><header><span class="brand">{app}'
        '</span>{nav}</header><main id="main"{live}>{body}</main></body></html>',
        title=title, app=S.APP, skip=S.SKIP_TO_CONTENT, nav=nav, live=live_attr, body=body)


def note(key: str | None, detail: str | None) -> Markup:
    if key is None or key not in S.NOTES:
        return Markup("")
    bad = key.endswith(("-bad", "-refused", "-empty", "-long", "-review", "-reason",
                        "-number", "no-line", "-none"))
    text = S.NOTES[key].format(detail=detail or "", limit=REPLY_LIMIT)
    return render('<p class="note {cls}" role="{role}">{text}</p>',
                  cls="error" if bad else "ok", role="alert" if bad else "status", text=text)


# ------------------------------------------------------------------ login


def login(pre_token: str, error: str | None = None, user: str = "") -> Markup:
    err = render('<p class="note error" role="alert">{e}</p>', e=error) if error else ""
    body = render(
        '<h1>{title}</h1>{err}<form method="post" action="/login" class="card narrow">'
        '<input type="hidden" name="csrf" value="{pre}">'
        '<label for="user">{lu}</label><input id="user" name="user" autocomplete="username" '
        'required value="{user}" autofocus>'
        '<label for="password">{lp}</label><input id="password" name="password" '
        'type="password" autocomplete="current-password" required>'
        '<button type="submit">{button}</button></form>',
        title=S.LOGIN_TITLE, err=err, pre=pre_token, lu=S.LOGIN_USER, user=user,
        lp=S.LOGIN_PASSWORD, button=S.LOGIN_BUTTON)
    return layout(S.LOGIN_TITLE, body, user=None, csrf=None)


def message_page(title: str, text: str) -> Markup:
    return layout(title, render('<h1>{t}</h1><p>{x}</p>', t=title, x=text), user=None,
                  csrf=None)


# ------------------------------------------------------------------ inbox


def inbox_list(items: Sequence[InboxItem], zone_of: Any, line_of: Any) -> Markup:
    if not items:
        return render('<p>{t}</p>', t=S.INBOX_EMPTY)
    rows = []
    for it in items:
        badges = []
        if it.unread:
            badges.append(render('<span class="badge unread">{t}</span>',
                                 t=S.INBOX_UNREAD.format(n=it.unread)))
        if it.review:
            badges.append(render('<span class="badge warn">{t}</span>', t=S.INBOX_REVIEW))
        if it.opted_out:
            badges.append(render('<span class="badge stop">{t}</span>', t=S.INBOX_OPTED_OUT))
        if it.taken_over_by:
            badges.append(render('<span class="badge">{t}</span>',
                                 t=S.INBOX_TAKEN_OVER.format(user=it.taken_over_by)))
        if it.outcome:
            badges.append(render('<span class="badge done">{t}</span>',
                                 t=S.OUTCOME_NAMES.get(it.outcome, it.outcome)))
        rows.append(render(
            '<li class="conv{unread}"><a href="/c/{id}"><span class="who">{number}</span>'
            '<span class="when">{at}</span><span class="line">{line}</span>'
            '<span class="last"><bdi>{last}</bdi></span></a>'
            '<span class="badges">{badges}</span></li>',
            unread=" has-unread" if it.unread else "", id=it.id,
            number=pretty_number(it.number), at=when(it.last_activity_at, zone_of(it.did)),
            line=S.INBOX_LINE.format(line=line_of(it.did)),
            last=(it.last_body or "")[:140], badges=join(badges, " ")))
    return render('<ul class="inbox">{rows}</ul>', rows=join(rows))


def inbox(items: Sequence[InboxItem], zone_of: Any, line_of: Any, *, user: str,
          csrf: str) -> Markup:
    body = render('<h1>{t}</h1><p class="hint">{live}</p><div id="live">{list}</div>',
                  t=S.INBOX_TITLE, live=S.LIVE_NOTE, list=inbox_list(items, zone_of, line_of))
    return layout(S.INBOX_TITLE, body, user=user, csrf=csrf, active="inbox", live="/events")


# ------------------------------------------------------------------ one conversation


def _calls(view: ConversationView, zone: str) -> Markup:
    """The missed call the conversation started from, in full, then every call from the
    number to this line, one line each."""
    if not view.calls:
        return render('<p>{t}</p>', t=S.CONV_NO_CALL)
    origin = Markup("")
    c = view.started_by
    if c is not None:
        origin = render(
            '<dl class="call"><dt>{a}</dt><dd>{at}</dd><dt>{d}</dt><dd>{did}</dd>'
            '<dt>{r}</dt><dd>{reason}</dd><dt>{g}</dt><dd>{ring}</dd><dt>{v}</dt>'
            '<dd>{vm}</dd></dl>', a=S.CALL_AT, at=when(c.at, zone), d=S.CALL_DID,
            did=pretty_number(c.did or ""), r=S.CALL_REASON, reason=c.reason, g=S.CALL_RING,
            ring=S.SECONDS.format(n=f"{c.ring_s:.0f}"), v=S.CALL_VOICEMAIL,
            vm=S.YES if c.voicemail_left else S.NO)
    others = [k for k in view.calls if k is not c]
    rest = Markup("")
    if others:
        rest = render('<h3>{t}</h3><ul class="calls">{li}</ul>', t=S.CONV_CALLS, li=join(
            render('<li>{at}: {verdict} ({reason}), {ring}</li>', at=when(k.at, zone),
                   verdict=k.verdict, reason=k.reason,
                   ring=S.SECONDS.format(n=f"{k.ring_s:.0f}"))
            for k in others))
    return render('{origin}{rest}', origin=origin, rest=rest)


def thread(view: ConversationView, zone: str) -> Markup:
    """The texts both ways with their states, and the follow-ups pending (live part)."""
    if view.texts:
        items = []
        for t in view.texts:
            state = S.STATE_NAMES.get(t.state, t.state)
            detail = f": {t.detail}" if t.detail and t.state in (
                "skipped", "cancelled", "failed") else ""
            items.append(render(
                '<li class="text {dir}"><span class="from">{who}</span> '
                '<span class="when">{at}</span><p><bdi>{body}</bdi></p>'
                '<span class="state state-{state_cls}">{state}{detail}</span></li>',
                dir=t.direction, who=S.FROM_CUSTOMER if t.direction == "in" else S.FROM_US,
                at=when(t.at, zone), body=t.body, state_cls=t.state, state=state,
                detail=detail))
        texts = render('<ol class="thread">{items}</ol>', items=join(items))
    else:
        texts = render('<p>{t}</p>', t=S.CONV_NO_TEXTS)
    if view.follow_ups:
        fu = render('<ul>{li}</ul>', li=join(
            render('<li>{t}</li>', t=S.FOLLOWUP_LINE.format(touch=f.touch,
                                                            at=when(f.due_at, zone)))
            for f in view.follow_ups))
    else:
        fu = render('<p>{t}</p>', t=S.CONV_NO_FOLLOWUPS)
    stop = render('<p class="note stop" role="status">{t}</p>', t=S.CONV_OPTED_OUT) \
        if view.opted_out else ""
    return render('{stop}<h2>{tt}</h2>{texts}<h2>{ft}</h2>{fu}', stop=stop,
                  tt=S.CONV_TEXTS, texts=texts, ft=S.CONV_FOLLOWUPS, fu=fu)


def _history(entries: Sequence[AuditEntry], zone: str) -> Markup:
    if not entries:
        return render('<p>{t}</p>', t=S.HISTORY_EMPTY)
    return render('<ul class="history">{li}</ul>', li=join(
        render('<li><span class="when">{at}</span> {who}: {what}</li>',
               at=when(e.at, zone), who=e.actor, what=S.ACTIONS.get(e.action, e.action))
        for e in entries))


def conversation(view: ConversationView, zone: str, *, user: str, csrf: str,
                 note_key: str | None, detail: str | None, writable: bool,
                 history: Sequence[AuditEntry] = ()) -> Markup:
    base = f"/c/{view.id}"
    token = csrf_field(csrf)
    banner = Markup("")
    if view.review is not None:
        banner = render(
            '<section class="banner" role="alert"><p>{text}</p>'
            '<form method="post" action="{base}/review">{token}'
            '<button name="decision" value="optout" class="danger">{yes}</button> '
            '<button name="decision" value="not-optout">{no}</button></form></section>',
            text=S.REVIEW_BANNER.format(body=view.review.body), base=base, token=token,
            yes=S.REVIEW_OPTOUT, no=S.REVIEW_NOT_OPTOUT)
    if view.taken_over_by:
        hold = render('<p>{t}</p><form method="post" action="{base}/handback">{token}'
                      '<button type="submit" aria-describedby="hb-hint">{b}</button> '
                      '<span id="hb-hint" class="hint">{h}</span></form>',
                      t=S.CONV_TAKEN_OVER.format(user=view.taken_over_by,
                                                 at=when(view.taken_over_at, zone)),
                      base=base, token=token, b=S.HAND_BACK, h=S.HAND_BACK_HINT)
    else:
        hold = render('<form method="post" action="{base}/takeover">{token}'
                      '<button type="submit" aria-describedby="to-hint">{b}</button> '
                      '<span id="to-hint" class="hint">{h}</span></form>',
                      base=base, token=token, b=S.TAKE_OVER, h=S.TAKE_OVER_HINT)
    options = [render('<option value="">{t}</option>', t=S.OUTCOME_NONE)]
    options += [render('<option value="{v}"{sel}>{t}</option>', v=o, t=S.OUTCOME_NAMES[o],
                       sel=Markup(" selected") if view.outcome == o else "")
                for o in OUTCOMES]
    outcome = render('<form method="post" action="{base}/outcome" class="row">{token}'
                     '<label for="outcome">{l}</label><select id="outcome" name="outcome">'
                     '{opts}</select><button type="submit">{b}</button></form>',
                     base=base, token=token, l=S.OUTCOME_LABEL, opts=join(options),
                     b=S.OUTCOME_BUTTON)
    reply = render('<form method="post" action="{base}/reply" class="reply">{token}'
                   '<label for="body">{l}</label><textarea id="body" name="body" rows="3" '
                   'maxlength="{max}" required aria-describedby="reply-hint"></textarea>'
                   '<span id="reply-hint" class="hint">{h}</span>'
                   '<button type="submit">{b}</button></form>',
                   base=base, token=token, l=S.REPLY_LABEL, max=REPLY_LIMIT, h=S.REPLY_HINT,
                   b=S.REPLY_BUTTON) if writable else Markup("")
    title = S.CONV_TITLE.format(number=pretty_number(view.number))
    body = render(
        '<h1>{title}</h1>{note}{banner}<div class="cols"><div class="col-main">'
        '<div id="live">{thread}</div>{reply}</div><aside class="col-side">'
        '<h2>{call_t}</h2>{calls}<h2>{desk_t}</h2>{hold}{outcome}<h2>{hist_t}</h2>{hist}'
        '</aside></div>',
        title=title, note=note(note_key, detail), banner=banner,
        thread=thread(view, zone), reply=reply, call_t=S.CONV_CALL,
        calls=_calls(view, zone), desk_t=S.DESK_TITLE,
        hold=hold if writable else "", outcome=outcome, hist_t=S.HISTORY_TITLE,
        hist=_history(history, zone))
    return layout(title, body, user=user, csrf=csrf, active="inbox",
                  live=f"/events?c={view.id}")


# ------------------------------------------------------------------ dashboard


def dashboard(body: Markup, *, user: str, csrf: str) -> Markup:
    return layout(S.DASH_TITLE, body, user=user, csrf=csrf, active="dashboard")


def dashboard_body(board: Mapping[str, Any], *, period: str, did: str | None,
                   dids: Sequence[tuple[str, str]]) -> Markup:
    """The dashboard's content (the same for every user: cached briefly by the view)."""
    periods = join(render('<option value="{v}"{sel}>{t}</option>', v=k, t=t,
                          sel=Markup(" selected") if k == period else "")
                   for k, t in S.PERIODS.items())
    lines = [render('<option value="">{t}</option>', t=S.DASH_ALL_LINES)]
    lines += [render('<option value="{v}"{sel}>{t}</option>', v=n, t=f"{name} ({n})",
                     sel=Markup(" selected") if n == did else "") for n, name in dids]
    form = render('<form method="get" action="/dashboard" class="row filters">'
                  '<label for="days">{pl}</label><select id="days" name="days">{periods}'
                  '</select><label for="did">{dl}</label><select id="did" name="did">{lines}'
                  '</select><button type="submit">{b}</button></form>',
                  pl=S.DASH_PERIOD, periods=periods, dl=S.DASH_DID, lines=join(lines),
                  b=S.DASH_SHOW)
    f = board["funnel"]
    steps = [(S.FUNNEL_STEPS[k], int(f[k])) for k in ("missed", "texted", "replied", "booked")]
    funnel_table = render(
        '<table class="funnel-numbers"><caption class="sr">{cap}</caption><tbody>{rows}'
        '</tbody></table>',
        cap=S.FUNNEL, rows=join(render('<tr><th scope="row">{k}</th><td data-step="{key}">'
                                       '{v}</td></tr>', k=label, v=value, key=key)
                                for (label, value), key in zip(
                                    steps, ("missed", "texted", "replied", "booked"),
                                    strict=True)))
    skips = board["skipped_by_reason"]
    skip_html = render('<ul>{li}</ul>', li=join(render('<li>{k}: {v}</li>', k=k, v=v)
                                                for k, v in skips.items())) \
        if skips else render('<p>{t}</p>', t=S.NO_SKIPS)
    outcomes = render('<ul>{li}</ul>', li=join(
        render('<li>{k}: {v}</li>', k=S.OUTCOME_NAMES[k], v=v)
        for k, v in board["outcomes"].items()))
    median = board["median_text_s"]
    median_text = S.NO_VALUE if median is None else S.SECONDS.format(n=f"{median:g}")
    hours = [(f"{h['hour']:02d}", h["rate"] or 0.0) for h in board["reply_rate_by_hour"]]
    weekdays = [(S.WEEKDAY_NAMES[i], d["rate"] or 0.0)
                for i, d in enumerate(board["reply_rate_by_weekday"])]
    days = [(d["day"][5:], float(d["missed"])) for d in board["missed_per_day"]]
    if f["missed"]:
        charts = render(
            '<section class="card wide"><h2>{ht}</h2>{hc}</section>'
            '<section class="card"><h2>{wt}</h2>{wc}</section>'
            '<section class="card wide"><h2>{dt}</h2>{dc}</section>',
            ht=S.REPLY_BY_HOUR, hc=columns(S.REPLY_BY_HOUR, hours, percent=True, label_every=3,
                                        width=640),
            wt=S.REPLY_BY_WEEKDAY, wc=columns(S.REPLY_BY_WEEKDAY, weekdays, percent=True,
                                           width=240),
            dt=S.MISSED_PER_DAY, dc=columns(S.MISSED_PER_DAY, days, width=640,
                                            label_every=max(1, len(days) // 10)))
    else:
        charts = render('<p>{t}</p>', t=S.NO_DATA)
    body = render(
        '<h1>{title}</h1>{form}<div class="grid">'
        '<section class="card wide"><h2>{ft}</h2>{fc}{ftab}</section>'
        '<section class="card"><h2>{mt}</h2><p class="big" id="median">{median}</p></section>'
        '<section class="card"><h2>{st}</h2>{skips}</section>'
        '<section class="card"><h2>{ot}</h2>{outcomes}</section>{charts}</div>',
        title=S.DASH_TITLE, form=form, ft=S.FUNNEL, fc=funnel(S.FUNNEL, steps),
        ftab=funnel_table, mt=S.MEDIAN_TEXT, median=median_text, st=S.SKIPS, skips=skip_html,
        ot=S.OUTCOMES_TITLE, outcomes=outcomes, charts=charts)
    return body


# ------------------------------------------------------------------ health


def health(report: Mapping[str, Any], verdict: tuple[int, str], *, user: str, csrf: str,
           zone: str, last_sends: Mapping[str, float]) -> Markup:
    code, line = verdict
    state_cls = ("ok", "warn", "bad", "warn")[code]
    live = report.get("daemon")
    parts = [render('<section class="card wide"><h2>{t}</h2><p class="verdict {cls}">{line}'
                    '</p></section>', t=S.HEALTH_VERDICT, cls=state_cls, line=line)]
    if live is None:
        parts.append(render('<p>{t}</p>', t=S.HEALTH_NO_DAEMON))
    else:
        rows = []
        for name, m in (live.get("modems") or {}).items():
            rows.append(render(
                '<tr><th scope="row">{n}</th><td>{s}{e}</td><td>{sim}</td><td>{sig}</td>'
                '<td>{reg}</td><td>{op}</td><td>{last}</td></tr>', n=name, s=m.get("state"),
                e=f" ({m['error']})" if m.get("error") else "",
                sim=m.get("sim") or S.NO_VALUE,
                sig=S.NO_VALUE if m.get("signal") is None else S.SIGNAL_DBM.format(dbm=m["signal"]),
                reg=m.get("registration") or S.NO_VALUE, op=m.get("operator") or S.NO_VALUE,
                last=when(last_sends.get(name), zone)))
        head = join(render('<th scope="col">{c}</th>', c=c) for c in S.MODEM_COLUMNS)
        parts.append(render('<section class="card wide"><h2>{t}</h2><table><thead><tr>{h}'
                            '</tr></thead><tbody>{rows}</tbody></table></section>',
                            t=S.HEALTH_MODEMS, h=head, rows=join(rows)))
        pbx = live.get("pbx") or {}
        link = S.PBX_UP if pbx.get("connected") else S.PBX_DOWN
        parts.append(render('<section class="card"><h2>{t}</h2><p>{type} {host}:{port}: {link}'
                            '</p></section>', t=S.HEALTH_PBX, type=pbx.get("type"),
                            host=pbx.get("host"), port=pbx.get("port"), link=link))
        store = live.get("store") or {}
        parts.append(render('<section class="card"><h2>{t}</h2><p>{path}</p><p>{err}</p>'
                            '</section>', t=S.HEALTH_STORE, path=store.get("path"),
                            err=store.get("error") or S.STORE_OK))
    outbox = report.get("outbox") or {}
    parts.append(render('<section class="card"><h2>{t}</h2><p>{depth}</p></section>',
                        t=S.HEALTH_OUTBOX, depth=", ".join(
                            f"{k} {v}" for k, v in sorted(outbox.items())) or S.OUTBOX_EMPTY))
    calls = report.get("calls") or {}
    texts = report.get("texts") or {}
    parts.append(render('<section class="card"><h2>{t}</h2><p>{today}</p></section>',
                        t=S.HEALTH_TODAY, today=S.TODAY_LINE.format(
                            missed=calls.get("missed", 0), answered=calls.get("answered", 0),
                            texts=sum(texts.values()), replies=report.get("replies", 0))))
    body = render('<h1>{t}</h1><div class="grid">{parts}</div>', t=S.HEALTH_TITLE,
                  parts=join(parts))
    return layout(S.HEALTH_TITLE, body, user=user, csrf=csrf, active="health")


# ------------------------------------------------------------------ opt-outs


def optouts(rows: Sequence[OptOut], *, query: str, zone: str, user: str, csrf: str,
            note_key: str | None, detail: str | None) -> Markup:
    token = csrf_field(csrf)
    search = render('<form method="get" action="/optouts" class="row" role="search">'
                    '<label for="q">{l}</label><input id="q" name="q" value="{q}" '
                    'inputmode="tel"><button type="submit">{b}</button></form>',
                    l=S.OPTOUT_SEARCH, q=query, b=S.OPTOUT_SEARCH_BUTTON)
    add = render('<form method="post" action="/optouts/add" class="card">{token}<h2>{t}</h2>'
                 '<label for="number">{nl}</label><input id="number" name="number" '
                 'inputmode="tel" required autocomplete="off">'
                 '<label for="reason">{rl}</label><input id="reason" name="reason" required '
                 'maxlength="200"><button type="submit" class="danger">{b}</button></form>',
                 token=token, t=S.OPTOUT_ADD, nl=S.OPTOUT_NUMBER, rl=S.OPTOUT_REASON,
                 b=S.OPTOUT_ADD_BUTTON)
    if rows:
        trs = []
        for i, r in enumerate(rows):
            trs.append(render(
                '<tr><th scope="row">{n}</th><td>{at}</td><td>{src}</td>'
                '<td><bdi>{why}</bdi></td><td><form method="post" action="/optouts/remove" '
                'class="row">{token}<input type="hidden" name="number" value="{num}">'
                '<label class="sr" for="rr{i}">{rl}</label><input id="rr{i}" name="reason" '
                'required maxlength="200" placeholder="{ph}">'
                '<button type="submit">{b}</button></form></td></tr>',
                n=pretty_number(r.number), at=when(r.at, zone), src=r.source,
                why=r.note or r.message or "", token=token, num=r.number, i=i,
                rl=S.OPTOUT_REMOVE_REASON.format(number=r.number), b=S.OPTOUT_REMOVE_BUTTON,
                ph=S.REASON_PLACEHOLDER))
        head = join(render('<th scope="col">{c}</th>', c=c) for c in S.OPTOUT_COLUMNS)
        table = render('<table class="optouts"><thead><tr>{h}</tr></thead><tbody>{rows}'
                       '</tbody></table>', h=head, rows=join(trs))
    else:
        table = render('<p>{t}</p>', t=S.OPTOUT_EMPTY)
    body = render('<h1>{t}</h1>{note}{search}{table}{add}', t=S.OPTOUT_TITLE,
                  note=note(note_key, detail), search=search, table=table, add=add)
    return layout(S.OPTOUT_TITLE, body, user=user, csrf=csrf, active="optouts")
