"""``textback run``: PBX link → store → policy → outbox → senders, in one asyncio process.

The daemon owns no logic of its own: it builds the parts from the config, wires their
callbacks, and runs them until SIGTERM. At start it recovers what a crash left behind
(outbox rows found ``sending`` become unconfirmed, calls recorded but never decided are
decided now), then tells systemd it is ready and keeps the watchdog fed. On SIGTERM it stops
taking calls, lets the texts in flight finish, and closes the store.

What it tells the admin must be true, because monitoring acts on it: READY=1 goes out only
once the store is open and the PBX link is logged in (or, after ``[pbx] ready_timeout_s``,
with a STATUS naming what is missing: refusing READY would get the service killed and stop
the modem side too); the heartbeat keeps STATUS and the status file ``textback status``
reads current (PBX link up or down and since when, senders, outbox depth, and the store's
current outage, e.g. disk full since 14:02).

SIGHUP (``systemctl reload``) reloads the config without dropping a call: the new file is
loaded and checked like at start; a file with an error is refused in one warning and the
daemon runs on with what it had; otherwise the services get the new config for their next
call and text (templates, hours, staff, caps, words, log level), and a change to what is
open (PBX link, modems, SIP, FastAGI, store) is logged as needing a restart
(textback.config.changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textback.config import Config, ConfigError, load_config
from textback.config.changes import (
    changed_keys,
    hot_config,
    keep_open_senders,
    needs_restart,
)
from textback.errors import TextbackError
from textback.inbound.callback import Callbacks, resolve_lost_callbacks
from textback.inbound.handler import InboundHandler
from textback.inbound.journal import REASSEMBLY_TIMEOUT_S, InboundJournal, JournaledText
from textback.inbound.notify import notify_urls
from textback.inbound.staff import Mailer, StaffDesk
from textback.inbound.staff_mail import MailQueue
from textback.logfmt import log
from textback.outbound.alerts import alert_bursts
from textback.outbound.call_record import undecided_calls
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.followups import FollowUps
from textback.outbound.open_calls import OpenCallKeeper
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.pbx.link import CallEnded, CallStarted, PbxLink, TextReceived
from textback.pbx.links import open_link
from textback.pbx.outcome import UNKNOWN_AFTER_RESTART
from textback.sdnotify import Notifier, watchdog_interval_s
from textback.sender import Sender
from textback.store import Store, describe_unavailable
from textback.webhooks import WebhookDelivery, Webhooks

logger = logging.getLogger("textback.daemon")

# recovery after downtime reads the PBX's records from a little before the last call we
# decided (clocks and the settle window), and never more than a day back
RECOVER_MARGIN_S = 120.0
RECOVER_MAX_S = 86400.0
LINK_WATCH_S = 1.0

# how often the heartbeat rewrites the status file at most (`textback status` calls a file
# older than its STALE_S the sign of a dead daemon)
HEARTBEAT_S = 5.0


def status_path(store_path: Path) -> Path:
    """The status file of the daemon using ``store_path``: beside it, named after it
    (``textback.db`` → ``textback.db.status.json``), so two stores in one folder never share
    one and ``textback status`` reads the file of the store its config names."""
    return store_path.with_name(store_path.name + ".status.json")


class Daemon:
    """The process that runs the service: it owns the store and every long-lived task.

    It decides nothing itself. ``run`` opens the store, repairs what a crash left (outbox rows
    found ``sending`` become unconfirmed, calls recorded but never decided are decided now,
    callbacks and follow-ups pending are resolved), builds the services from the config
    (senders, the outbound pipeline and dispatcher, the inbound handler, the PBX link) and
    then only moves facts between them: a call the PBX link reports goes to the pipeline, a
    text a modem or the PBX receives goes to the inbound handler. It stops on SIGTERM by
    refusing new calls and letting the texts in flight finish, because a text killed between
    the modem's Ctrl-Z and its answer can only ever be reported as unconfirmed.
    """

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 notifier: Notifier | None = None, modem_poll_s: float = 1.0,
                 heartbeat_s: float = HEARTBEAT_S, log_level: str | None = None) -> None:
        self.config = config
        # ``textback run --log-level``: when given it wins over ``[log] level``, on reload too
        self.log_level = log_level
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.modem_poll_s = modem_poll_s
        self.heartbeat_s = heartbeat_s
        self.running = True  # False in the last status file, written on the way out
        self.ready = False
        self.pbx_down_since: float | None = clock()
        self.outbox_queued: int | None = None
        self._announce: asyncio.Task[None] | None = None
        self.store: Store | None = None
        self.supervisors: dict[str, Any] = {}
        self.senders: dict[str, Sender] = {}
        self.link: PbxLink | None = None
        self.pipeline: CallPipeline | None = None
        self.dispatcher: Dispatcher | None = None
        self.inbound: InboundHandler | None = None
        self.journal: InboundJournal | None = None
        self.agi_server: Any = None
        self.open_calls: OpenCallKeeper | None = None
        self.outbox: Outbox | None = None
        self.followups: FollowUps | None = None
        self.reloads = 0  # reloads applied (refused ones not counted)
        self._built = asyncio.Event()  # the services exist: a reload may reconfigure them
        self._reload_lock = asyncio.Lock()
        self.web: Any = None  # textback.web.server.WebServer, when [web] enabled
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        # events for [[webhook]]s and in-process observers (textback.web.metrics); the
        # store is attached once open
        self.hooks = Webhooks(config.webhooks, clock=clock)
        self.webhook_delivery: WebhookDelivery | None = None

    def stop(self) -> None:
        self._stop.set()

    # ---------------------------------------------------------------- build

    async def _open_store(self) -> tuple[Store, Outbox]:
        path = self.config.store.path
        store = await Store.open(path, background_checkpoints=True)
        policy = self.config.policy
        outbox = Outbox(store, max_attempts=policy.max_attempts,
                        retry_base_s=policy.retry_base_s, retry_max_s=policy.retry_max_s,
                        resend_unconfirmed=policy.resend_unconfirmed, config=self.config)
        return store, outbox

    def _build_modems(self) -> None:
        from textback.modem.sender import ModemSender
        from textback.modem.supervisor import ModemSupervisor

        for modem in self.config.modems:
            supervisor = ModemSupervisor(
                modem.port, name=modem.name,
                pin=modem.pin.reveal() if modem.pin is not None else _read_pin(modem.pin_file),
                smsc=modem.smsc, poll_interval=self.modem_poll_s,
                send_timeout=modem.send_timeout_s)
            self.supervisors[modem.sender] = supervisor
            self.senders[modem.sender] = ModemSender(supervisor, modem.sender)

    def _pbx_secret(self) -> str:
        pbx = self.config.pbx
        if pbx.secret is not None:
            return pbx.secret.reveal()
        if pbx.secret_file is not None:
            lines = pbx.secret_file.read_text(encoding="utf-8").splitlines()
            return lines[0].strip() if lines else ""
        return ""

    def _build_link(self) -> PbxLink:
        """The PBX link (textback.pbx.link), and the SIP sender that rides on it."""
        pbx, sip = self.config.pbx, self.config.sip
        link = open_link(pbx.type, host=pbx.host, port=pbx.port, user=pbx.user,
                         secret=self._pbx_secret(),
                         tracker=self.config.trunks.tracker_config(),
                         ping_timeout=pbx.ping_timeout_s,
                         message_context=self.config.trunks.asterisk_message_context,
                         records=pbx.records)
        if sip is not None:
            self.senders["sip"] = link.message_sender(sip.destination, sip.from_uri,
                                                      sip.profile)
        return link

    # ---------------------------------------------------------------- inbound hooks

    async def _on_modem_message(self, text: JournaledText, on_stored: Any) -> None:
        """A text from a modem, out of the inbound journal (textback.inbound.journal)."""
        assert self.inbound is not None
        await self.inbound.receive(number=text.number, text=text.text, did=None,
                                   via=text.modem, at=text.at, on_stored=on_stored)

    def _on_modem_report(self, sender: str) -> Callable[[Any], Any]:
        async def handle(report: Any) -> None:
            assert self.inbound is not None
            await self.inbound.delivery_report(sender, report.mr, report.category, self.clock())
        return handle

    def _spawn(self, coro: Any) -> None:
        """Run a handler task, keeping a reference so it is not collected mid-flight."""
        task = asyncio.get_running_loop().create_task(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _consume_link(self, link: PbxLink) -> None:
        """The one consumer of what the PBX reports: calls go to the pipeline (a ringing
        call's facts to the store, so a restart keeps them), texts to the inbound handler."""
        assert self.pipeline is not None and self.open_calls is not None
        while True:
            event = await link.next_event()
            if isinstance(event, CallEnded):
                self.open_calls.ended(event.outcome.call)
                self.pipeline.submit(event.outcome)
            elif isinstance(event, CallStarted):
                self.open_calls.report(event.start)
                self.pipeline.expect(event.start)
            elif isinstance(event, TextReceived) and self.inbound is not None:
                self._spawn(self.inbound.receive(number=event.number, text=event.body,
                                                 did=event.did, via="sip", at=self.clock()))

    async def _recover_after_downtime(self, link: PbxLink, alive_until: float | None) -> None:
        """Each time the link logs in (at start, after a reconnect): calls that ended while
        we were away, from the PBX's own records, decided like any other call. A source that
        is missing, locked or foreign is one log line; the daemon runs on without it.

        "Away" starts when we last knew what the PBX did: the link's loss for a reconnect,
        and at start the last call the previous process decided (``alive_until``, read
        before this process decides anything: a resync's fresh verdicts must not move it).
        Calls already in the store are skipped, except ``unknown-after-restart`` ones: the
        records know how those ended, and their verdict replaces the unknown one."""
        assert self.store is not None and self.pipeline is not None
        away_since = alive_until
        while True:
            await link.connected.wait()
            now = self.clock()
            last = away_since if away_since is not None else now
            since = max(min(last, now) - RECOVER_MARGIN_S, now - RECOVER_MAX_S)
            known = await self.store.fetchall(
                "SELECT call_id FROM calls WHERE decided_at >= ? AND reason != ?",
                (since - RECOVER_MARGIN_S, UNKNOWN_AFTER_RESTART))
            try:
                outcomes = await link.recover(since, frozenset(r["call_id"] for r in known))
            except TextbackError as exc:
                log(logger, logging.WARNING, "recovery_unavailable", pbx=link.kind,
                    error=str(exc), fix="textback check-config names the records source")
                outcomes = []
            for outcome in outcomes:
                log(logger, logging.INFO, "call_recovered", call=outcome.call,
                    verdict=outcome.verdict, reason=outcome.reason, ended_at=outcome.ended_at,
                    source=outcome.extra.get("recovered"))
                self.pipeline.submit(outcome)
            while link.connected.is_set():
                await asyncio.sleep(LINK_WATCH_S)
            away_since = self.clock()

    async def _last_alive(self, store: Store) -> float | None:
        """When the previous process last knew what the PBX did: its status file's last
        heartbeat (or when it lost the PBX link, if it had), else the newest call it
        decided or saw start. None: a fresh store (recovery then looks back only
        ``RECOVER_MARGIN_S``: calls from before textback was installed are not texted)."""
        try:
            status = json.loads(status_path(self.config.store.path).read_text("utf-8"))
            at = float(status["at"])
            pbx = status.get("pbx") or {}
            if not pbx.get("connected") and pbx.get("down_since") is not None:
                at = min(at, float(pbx["down_since"]))
            return at
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass
        row = await store.fetchone(
            "SELECT max(t) AS t FROM (SELECT max(decided_at) AS t FROM calls "
            "UNION ALL SELECT max(started_at) FROM open_calls)")
        return row["t"] if row is not None else None

    # ---------------------------------------------------------------- run

    async def run(self) -> int:
        store, outbox = await self._open_store()
        self.store, self.outbox = store, outbox
        now = self.clock()
        recovery = await outbox.recover_after_crash(now)
        for item in recovery.never_handed:
            log(logger, logging.INFO, "text_requeued", outbox=item.id, number=item.number,
                call=item.call_id, why="process stopped before the modem got the text")
        for item in recovery.unconfirmed:
            log(logger, logging.WARNING, "text_unconfirmed", outbox=item.id,
                number=item.number, call=item.call_id,
                why="process stopped while the modem had the text; not resent "
                    "(policy.resend_unconfirmed = true to resend)")
        self._build_modems()
        dispatcher = Dispatcher(outbox, self.senders, clock=self.clock,
                                handover_after_s=self.config.policy.handover_after_s)
        followups = FollowUps(store, outbox, self.config, clock=self.clock,
                              wake=dispatcher.wake)
        pipeline = CallPipeline(store, outbox, self.config, clock=self.clock,
                                wake=dispatcher.wake, followups=followups)
        self.dispatcher, self.pipeline, self.followups = dispatcher, pipeline, followups
        pipeline.warm_up()
        self.hooks.store = store
        dispatcher.hooks = pipeline.hooks = self.hooks
        # staff e-mail is queued in the store and sent by its own loop (MTA down: retried)
        mail = MailQueue(store, Mailer(self.config.email), clock=self.clock,
                         notify_urls=notify_urls(self.config))  # + Apprise channels
        staff = StaffDesk(store, outbox, self.config, mailer=mail.mailer, mail=mail,
                          wake=dispatcher.wake)
        self.inbound = InboundHandler(store, outbox, self.config, clock=self.clock,
                                      wake=dispatcher.wake, followups=followups, staff=staff)
        self.inbound.hooks = staff.reviews.hooks = self.hooks
        # every PDU a modem receives is journaled raw before it is decoded or handled
        self.journal = InboundJournal(store, self._on_modem_message,
                                      resume=self.inbound.resume, clock=self.clock,
                                      reassembly_timeout_s=REASSEMBLY_TIMEOUT_S)
        self.open_calls = OpenCallKeeper(store, self.clock)
        link = self.link = self._build_link()
        link.seed(await self.open_calls.load(link.kind))  # before it connects: for its resync
        self.inbound.callbacks = self._build_callbacks(store, followups, link)
        await resolve_lost_callbacks(store, outbox, self.config, now)
        await followups.recover(now)
        # The SIP sender rides on the PBX link, so it exists only now; the
        # dispatcher took a copy of the senders when it was built.
        dispatcher.senders.update(self.senders)
        await self._start_agi(pipeline)
        if self.config.web.enabled:  # the office's web app (textback/web/), same loop
            from textback.web.server import start_web
            self.web = await start_web(self.config, store, outbox, followups=followups,
                                       reviews=staff.reviews, clock=self.clock,
                                       wake=dispatcher.wake, daemon=self,
                                       status_file=status_path(self.config.store.path))
        for name, supervisor in self.supervisors.items():
            supervisor.pdu_journal = self.journal.sink(name)
            supervisor.report_handlers.append(self._on_modem_report(name))
            supervisor.start()
        # a burst alert pending from before a restart still goes out
        await alert_bursts(store, outbox, self.config, self.clock())
        alive_until = await self._last_alive(store)  # before anything new is decided
        undecided = await undecided_calls(store)
        for outcome in undecided:
            log(logger, logging.INFO, "call_redecided", call=outcome.call,
                why="recorded before a restart but never decided")
            await pipeline.redecide(outcome)
        log(logger, logging.INFO, "started", pbx=self.config.pbx.type,
            host=self.config.pbx.host, port=self.config.pbx.port,
            senders=",".join(self.senders) or "none", store=str(self.config.store.path),
            queued=recovery.queued, unconfirmed=len(recovery.unconfirmed))
        self._tasks = [
            asyncio.create_task(pipeline.run(), name="pipeline"),
            asyncio.create_task(dispatcher.run(), name="dispatcher"),
            asyncio.create_task(followups.run(), name="followups"),
            asyncio.create_task(mail.run(), name="staff-mail"),
            asyncio.create_task(self.journal.run(), name="inbound-journal"),
            asyncio.create_task(link.run(), name="pbx-link"),
            asyncio.create_task(self._consume_link(link), name="pbx-events"),
            asyncio.create_task(self._recover_after_downtime(link, alive_until),
                                name="pbx-recovery"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(store.checkpoints(), name="store-checkpoints"),
        ]
        if self.config.webhooks:  # its own task: a dead hook never slows texting
            self.webhook_delivery = WebhookDelivery(store, self.config.webhooks,
                                                    clock=self.clock, hub=self.hooks)
            self._tasks.append(asyncio.create_task(self.webhook_delivery.run(),
                                                   name="webhooks"))
        self._built.set()
        self._announce = asyncio.create_task(self._announce_ready(), name="ready")
        stop_wait = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop_wait, *self._tasks],
                                     return_when=asyncio.FIRST_COMPLETED)
        status = 0
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                exc = task.exception()
                log(logger, logging.ERROR, "fatal", task=task.get_name(), error=str(exc))
                status = 1
        await self._shutdown()
        return status

    def _build_callbacks(self, store: Store, followups: FollowUps,
                         link: PbxLink) -> Callbacks:
        """Callback on reply rides on the PBX link (its ``originate``)."""
        async def placed(number: str, did: str, at: float) -> None:
            await followups.cancel(number, "callback", at, did=did)

        return Callbacks(store, link, clock=self.clock, on_placed=placed)

    async def _start_agi(self, pipeline: CallPipeline) -> None:
        """FastAGI trigger beside the PBX link; the store's unique call key and the
        pipeline's duplicate check make a call reported by both paths one call."""
        agi = self.config.agi
        if not agi.enabled:
            return
        from textback.pbx.asterisk.agi_server import FastAgiServer

        async def on_outcome(outcome: Any) -> None:
            pipeline.submit(outcome)

        if agi.token is None:  # parse_config refuses an enabled [agi] without one
            raise RuntimeError("[agi] is enabled without a token")
        self.agi_server = FastAgiServer(on_outcome, host=agi.host, port=agi.port,
                                        token=agi.token.reveal(), paths=agi.paths,
                                        default_region=self.config.trunks.default_region)
        await self.agi_server.start()
        log(logger, logging.INFO, "agi_listening", host=agi.host, port=agi.port)

    async def _announce_ready(self) -> None:
        """READY=1 once the PBX link is logged in (the store is open by now), or after
        ``[pbx] ready_timeout_s`` with a STATUS that says the link is missing."""
        pbx = self.config.pbx
        up = self.link.connected if self.link is not None else None
        missing = ""
        if up is not None:
            try:
                async with asyncio.timeout(pbx.ready_timeout_s):
                    await up.wait()
            except TimeoutError:
                missing = (f"not ready: pbx {pbx.type} {pbx.host}:{pbx.port} not logged in "
                           f"after {pbx.ready_timeout_s:g} s; ")
                log(logger, logging.WARNING, "ready_without_pbx", pbx=pbx.type,
                    host=pbx.host, port=pbx.port, waited_s=pbx.ready_timeout_s,
                    why="the PBX link is not up; texting from the modem goes on, calls are "
                        "seen once the link is up")
        self._note_pbx()
        self.notifier.ready(missing + self.status_line())
        self.ready = True

    # ---------------------------------------------------------------- reload

    def request_reload(self) -> None:
        """The SIGHUP handler: reload in a task (a signal handler must not block)."""
        self._spawn(self.reload())

    async def reload(self, path: Path | None = None) -> bool:
        """Load the config again (``path``, else the file it came from) and apply what can
        be applied while running; True when applied, False when refused. A bad file changes
        nothing: one ``reload_refused`` warning, and the daemon runs on the old config."""
        await self._built.wait()
        async with self._reload_lock:
            # RELOADING=1 ... READY=1 only once started: READY=1 before the PBX link is up
            # would be the lie _announce_ready avoids
            announced = self.ready
            if announced:
                self.notifier.reloading()
            try:
                return await self._reload(path if path is not None else self.config.source)
            finally:
                if announced:
                    self.notifier.ready(self.status_line())

    async def _reload(self, path: Path | None) -> bool:
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            first = exc.issues[0].format(str(exc.path)) if exc.issues else str(exc)
            log(logger, logging.WARNING, "reload_refused", path=str(exc.path), error=first,
                problems=len(exc.issues), effect="running on with the previous config",
                fix=f"textback check-config --config {exc.path}")
            return False
        except Exception as exc:  # a reload must never take the daemon down
            log(logger, logging.WARNING, "reload_refused", path=str(path),
                error=f"{type(exc).__name__}: {exc}",
                effect="running on with the previous config", exc_info=True)
            return False
        for warning in new.warnings:
            log(logger, logging.WARNING, "config_warning", key=warning.key,
                line=warning.line, problem=warning.message)
        changed = changed_keys(self.config, new)
        restart = [key for key in changed if needs_restart(key)]
        hot, waiting = keep_open_senders(hot_config(self.config, new), self.config,
                                         self.senders)
        restart += waiting
        applied = [key for key in changed if key not in restart]
        self.apply_config(hot)
        self.reloads += 1
        log(logger, logging.INFO, "config_reloaded", path=str(new.source),
            changed=",".join(applied) or "none",
            log_level=logging.getLevelName(logging.getLogger().level))
        if restart:
            log(logger, logging.WARNING, "reload_needs_restart", keys=",".join(restart),
                effect="running on with the previous values of these keys",
                fix="systemctl restart textback")
        return True

    def apply_config(self, config: Config) -> None:
        """Hand ``config`` to every running service (their ``reconfigure``), and set the log
        level; the sections that need a restart must be the running ones (hot_config)."""
        self.config = config
        for service in (self.outbox, self.pipeline, self.followups, self.inbound):
            if service is not None:
                service.reconfigure(config)
        if self.dispatcher is not None:
            self.dispatcher.reconfigure(config.policy.handover_after_s)
        logging.getLogger().setLevel(self.log_level or config.log.level or "INFO")

    def _pbx_up(self) -> bool | None:
        return self.link.connected.is_set() if self.link is not None else None

    def _note_pbx(self) -> None:
        """Keep ``pbx_down_since``: None while the link is up, else when it was last up."""
        if self._pbx_up():
            self.pbx_down_since = None
        elif self.pbx_down_since is None:
            self.pbx_down_since = self.clock()

    def status_line(self) -> str:
        """systemd's STATUS: ``pbx up, modems 1/1 ready, outbox 3`` (+ a store outage)."""
        ready = sum(1 for s in self.supervisors.values() if s.health().state == "ready")
        parts = [f"pbx {'up' if self._pbx_up() else 'down'}",
                 f"modems {ready}/{len(self.supervisors)} ready",
                 f"outbox {self.outbox_queued if self.outbox_queued is not None else '?'}"]
        store = self.store
        if store is not None and store.unavailable is not None:
            since = time.strftime("%H:%M", time.localtime(store.unavailable_since or 0))
            parts.append(f"store: {describe_unavailable(store.unavailable.kind)} "
                         f"since {since}")
        return ", ".join(parts)

    async def _count_outbox(self) -> None:
        if self.store is None:
            return
        with contextlib.suppress(Exception):  # a store outage shows as the store's error
            row = await self.store.fetchone(
                "SELECT count(*) AS n FROM outbox WHERE state IN ('queued', 'sending')")
            self.outbox_queued = int(row["n"]) if row else 0

    async def _heartbeat(self) -> None:
        """Feed the systemd watchdog, write the status file ``textback status`` reads (and
        ``textback send`` checks) and keep systemd's STATUS current. Also wakes the
        dispatcher: a row queued by another process (``textback send`` while the daemon runs)
        goes within one beat, not at the next idle poll."""
        interval = min(watchdog_interval_s() or self.heartbeat_s, self.heartbeat_s)
        while True:
            self.notifier.watchdog()
            self._note_pbx()
            await self._count_outbox()
            await self.write_status()
            self.notifier.status(self.status_line())
            if self.dispatcher is not None:
                self.dispatcher.wake()
            if self.webhook_delivery is not None:  # events queued by the CLI
                self.webhook_delivery.wake()
            await asyncio.sleep(interval)

    async def write_status(self) -> None:
        modems = {}
        for name, supervisor in self.supervisors.items():
            h = supervisor.health()
            info = h.info
            modems[name] = {
                "state": h.state, "error": h.error, "port": h.port,
                "model": getattr(info, "model", None),
                # ModemInfo has signal_dbm/signal_csq (no "signal": it was always None)
                "signal": getattr(info, "signal_csq", None),
                "signal_dbm": getattr(info, "signal_dbm", None),
                "sim": getattr(info, "sim", None),
                "operator": getattr(info, "operator", None),
                "registration": getattr(info, "registration", None),
                "reopens": h.reopens, "resets": h.resets,
            }
        store = self.store
        outage = store.unavailable if store is not None else None
        status = {
            "pid": os.getpid(), "at": self.clock(), "running": self.running,
            "ready": self.ready, "modems": modems,
            "senders": {name: bool(s.available()) for name, s in self.senders.items()},
            "pbx": {"type": self.config.pbx.type, "host": self.config.pbx.host,
                    "port": self.config.pbx.port,
                    "connected": self._pbx_up(),
                    "down_since": self.pbx_down_since},
            "store": {"path": str(self.config.store.path),
                      "error": str(outage) if outage is not None else None,
                      "kind": outage.kind if outage is not None else None,
                      "since": store.unavailable_since if outage is not None and
                      store is not None else None},
            "outbox_queued": self.outbox_queued,
            "backlog": self.pipeline.backlog if self.pipeline else 0,
            "in_flight": self.dispatcher.in_flight if self.dispatcher else 0,
            "refused": {
                "agi_token": self.agi_server.stats["refused-token"]
                if self.agi_server is not None else 0,
                "user_event": self.link.refused.get("user_event", 0)
                if self.link is not None else 0,
            },
        }
        _publish(status_path(self.config.store.path), json.dumps(status, indent=1))

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        if self._announce is not None:
            self._announce.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._announce
        log(logger, logging.INFO, "stopping", in_flight=self.dispatcher.in_flight
            if self.dispatcher else 0)
        if self.link is not None:
            self.link.stop()
        if self.agi_server is not None:
            await self.agi_server.close()
        if self.web is not None:
            await self.web.stop()
        if self.dispatcher is not None:
            left = await self.dispatcher.stop()
            if left:
                log(logger, logging.WARNING, "stopped_with_texts_in_flight", n=left)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pipeline is not None and self.pipeline.backlog:
            with contextlib.suppress(Exception):
                await self.pipeline.drain()
        for supervisor in self.supervisors.values():
            await supervisor.stop()
        if self.store is not None:
            self.running = False
            await self.write_status()
            await self.store.close()
        log(logger, logging.INFO, "stopped")


def _publish(path: Path, text: str) -> None:
    """Replace ``path`` atomically; on a full disk (no room for a new file) overwrite the
    old file in place instead, reusing its blocks, so the admin still sees why."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
    data = text.encode()
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def _read_pin(path: Path | None) -> str | None:
    if path is None:
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else None


async def run_daemon(config: Config, log_level: str | None = None) -> int:
    """Run until SIGTERM/SIGINT, reloading the config on SIGHUP; the exit status.
    ``log_level``: the ``--log-level`` flag, if given (it then wins over ``[log] level``)."""
    daemon = Daemon(config, log_level=log_level)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    return await daemon.run()
