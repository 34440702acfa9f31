"""The web app's aiohttp application and its lifetime inside the daemon.

``make_app`` builds the application: the login pages, the views (``textback.web.views``),
the static CSS/JS shipped in the package, and two middlewares:

* security headers on every answer (a Content-Security-Policy that allows nothing from
  outside this origin and no inline script or style, no framing, no referrer: a login
  link's token never leaks in a Referer);
* the session gate: every page but the login and static files needs a live session cookie
  (HttpOnly, SameSite=Strict, Secure over TLS), and every POST a CSRF token equal to the
  session's (the login form: equal to a pre-login cookie) — else 403, before any handler.

``WebServer`` binds it to ``[web] listen`` (loopback unless the admin allowed otherwise, and
then only with TLS or behind a proxy: checked by the config and again here), opens the
read-only store connection the pages read through, and stops it on shutdown: live-update
streams end at once, so stopping never waits for them.

``textback.web.metrics`` (``/metrics``, ``/healthz``), when installed, adds its routes with
``add_routes(app, daemon)``; they are public, as a Prometheus scrape is.
"""

from __future__ import annotations

import importlib
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from textback.config import Config, WebConfig
from textback.errors import TextbackError
from textback.logfmt import log
from textback.pbx.asterisk.agi_access import is_loopback_host
from textback.store import Store
from textback.web import auth, pages
from textback.web import strings as S
from textback.web.deps import WebDeps
from textback.web.views import CSRF, DEPS, USER, html, routes

if TYPE_CHECKING:
    from textback.inbound.possible_optout import PossibleOptOuts
    from textback.outbound.followups import FollowUps
    from textback.outbound.outbox import Outbox

logger = logging.getLogger("textback.web")

STATIC = Path(__file__).with_name("static")
SESSION_COOKIE = "tb_session"
PRE_COOKIE = "tb_login"  # the login form's CSRF token (there is no session yet)
PUBLIC = ("/login", "/static/", "/favicon.ico", "/metrics", "/healthz")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebRefused(TextbackError):
    """The web app may not listen where the config says (see WebConfig)."""


def check_listen(conf: WebConfig) -> None:
    if is_loopback_host(conf.host):
        return
    if not conf.allow_remote:
        raise WebRefused(f"[web] listen {conf.host}:{conf.port} is not loopback; set "
                         "allow_remote = true (with TLS or behind_proxy) to allow it")
    if not conf.https and not conf.behind_proxy:
        raise WebRefused(f"[web] listen {conf.host}:{conf.port} is reachable from other "
                         "machines without TLS: set tls_cert/tls_key or behind_proxy = true")


def _secure(conf: WebConfig) -> bool:
    return conf.https or conf.behind_proxy


def client_ip(request: web.Request, conf: WebConfig) -> str:
    """The client's address; behind the proxy, the address the proxy saw (the last hop it
    appended to X-Forwarded-For: the only one it vouches for)."""
    if conf.behind_proxy:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        if hops and hops[-1]:
            return hops[-1]
    return request.remote or "?"


def _harden(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _harden(request, exc)
        raise
    if not response.prepared:  # an event stream sent its headers already
        _harden(request, response)
    return response


def _forbidden() -> web.Response:
    return html(pages.message_page(S.LOGIN_TITLE, S.CSRF_REFUSED), status=403)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC):
        return await handler(request)
    d = request.app[DEPS]
    sess = await auth.session(d.reader, request.cookies.get(SESSION_COOKIE), d.clock())
    if sess is None:
        if request.method == "POST":
            return _forbidden()
        raise web.HTTPSeeOther("/login")
    if request.path != "/events":
        wait = d.budget.take(sess.csrf, time.monotonic())
        if wait > 0:
            response = web.Response(status=429, text=S.SLOW_DOWN, content_type="text/plain")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
    if request.method == "POST":
        form = await request.post()
        if not auth.same_token(str(form.get("csrf", "")), sess.csrf):
            log(logger, logging.WARNING, "web_csrf_refused", user=sess.user,
                path=request.path)
            return _forbidden()
    request[USER] = sess.user
    request[CSRF] = sess.csrf
    return await handler(request)


def _set_cookie(response: web.StreamResponse, conf: WebConfig, name: str, value: str,
                max_age: float | None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=_secure(conf),
                        path="/", max_age=int(max_age) if max_age is not None else None)


async def _start_session(request: web.Request, user: str) -> web.StreamResponse:
    d = request.app[DEPS]
    conf = d.config.web
    token, _ = await auth.start_session(d.store, user, d.clock(), conf.session_hours)
    response = web.Response(status=303, headers={"Location": "/"})
    _set_cookie(response, conf, SESSION_COOKIE, token, conf.session_hours * 3600)
    response.del_cookie(PRE_COOKIE, path="/")
    log(logger, logging.INFO, "web_login", user=user, ip=client_ip(request, conf))
    return response


def _login_form(request: web.Request, *, error: str | None = None, user: str = "",
                status: int = 200) -> web.Response:
    # one token per browser: a second tab's (or a favicon fetch's) login page must not
    # invalidate the form already shown
    pre = request.cookies.get(PRE_COOKIE, "")
    if not (20 <= len(pre) <= 64 and pre.replace("-", "").replace("_", "").isalnum()):
        pre = secrets.token_urlsafe(24)
    response = html(pages.login(pre, error, user), status=status)
    _set_cookie(response, request.app[DEPS].config.web, PRE_COOKIE, pre, 3600)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    d = request.app[DEPS]
    token = request.query.get("token")
    if token:
        user = await auth.use_login_link(d.store, token, d.clock())
        if user is None:
            return _login_form(request, error=S.LOGIN_LINK_BAD, status=403)
        return await _start_session(request, user)
    return _login_form(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    d = request.app[DEPS]
    form = await request.post()
    if not auth.same_token(str(form.get("csrf", "")), request.cookies.get(PRE_COOKIE, "")):
        return _forbidden()
    user = str(form.get("user", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    ip = client_ip(request, d.config.web)
    now = d.clock()
    wait = d.limiter.retry_after(ip, user, now)
    if wait > 0:
        log(logger, logging.WARNING, "web_login_limited", user=user, ip=ip, wait_s=round(wait))
        response = _login_form(request, user=user, status=429,
                               error=S.LOGIN_LIMITED.format(minutes=max(1, round(wait / 60))))
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    if not await auth.check_login(d.reader, user, password):
        d.limiter.failed(ip, user, now)
        log(logger, logging.WARNING, "web_login_failed", user=user, ip=ip)
        return _login_form(request, user=user, error=S.LOGIN_FAILED, status=401)
    d.limiter.succeeded(ip, user)
    return await _start_session(request, user)


async def logout(request: web.Request) -> web.StreamResponse:
    d = request.app[DEPS]
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await auth.end_session(d.store, token)
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def make_app(deps: WebDeps) -> web.Application:
    app = web.Application(middlewares=[headers_middleware, session_middleware],
                          client_max_size=64 * 1024)
    app[DEPS] = deps
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_get("/favicon.ico", favicon)
    routes(app)
    add_metrics(app, deps.daemon)
    return app


def add_metrics(app: web.Application, daemon: object) -> None:
    """``/metrics`` and ``/healthz`` from ``textback.web.metrics`` (its own module and
    owner), when it is installed and there is a daemon to report on. Both paths are in
    ``PUBLIC``: a Prometheus scrape or a load balancer's probe has no session."""
    if daemon is None:
        return
    try:
        metrics = importlib.import_module("textback.web.metrics")
    except ModuleNotFoundError:
        return
    metrics.add_routes(app, daemon)


class WebServer:
    """The web app bound to ``[web] listen``; ``start`` and ``stop`` from the daemon."""

    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self.conf = deps.config.web
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    def _ssl(self) -> ssl.SSLContext | None:
        if self.conf.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.conf.tls_cert, self.conf.tls_key)
        return ctx

    async def start(self) -> None:
        check_listen(self.conf)
        self.runner = web.AppRunner(make_app(self.deps), access_log=None,
                                    handle_signals=False, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.conf.host, self.conf.port,
                           ssl_context=self._ssl())
        await site.start()
        address = self.runner.addresses[0]
        self.port = int(address[1])
        log(logger, logging.INFO, "web_listening", host=self.conf.host, port=self.port,
            tls=self.conf.https, behind_proxy=self.conf.behind_proxy)

    @property
    def url(self) -> str:
        scheme = "https" if self.conf.https else "http"
        host = self.conf.host if ":" not in self.conf.host else f"[{self.conf.host}]"
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        self.deps.stopping.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.owns_reader:
            await self.deps.reader.close()

    owns_reader = False


async def start_web(config: Config, store: Store, outbox: Outbox, *,
                    followups: FollowUps | None, reviews: PossibleOptOuts | None,
                    clock: Callable[[], float], wake: Callable[[], None],
                    status_file: Path | None, daemon: object = None) -> WebServer | None:
    """The daemon's web app, listening; None (after an ERROR log saying why) when it cannot
    listen: texting goes on without it."""
    from textback.inbound.desk import Desk

    reader = await Store.open(config.store.path, readonly=True)
    deps = WebDeps(config=config, store=store, reader=reader, outbox=outbox,
                   desk=Desk(store, followups, wake=wake), reviews=reviews,
                   limiter=auth.LoginLimiter(), clock=clock, wake=wake,
                   status_file=status_file, daemon=daemon)
    server = WebServer(deps)
    server.owns_reader = True
    try:
        await server.start()
    except (OSError, WebRefused, ssl.SSLError) as exc:
        log(logger, logging.ERROR, "web_not_started", host=config.web.host,
            port=config.web.port, error=str(exc),
            why="the web app cannot listen; texting goes on without it")
        await server.stop()
        return None
    return server
