"""``textback run``: listener → store → policy → outbox → senders, in one asyncio process.

The daemon owns no logic of its own: it builds the parts from the config, wires their
callbacks, and runs them until SIGTERM. At start it recovers what a crash left behind
(outbox rows found ``sending`` become unconfirmed, calls recorded but never decided are
decided now), then tells systemd it is ready and keeps the watchdog fed. On SIGTERM it stops
taking calls, lets the texts in flight finish, and closes the store.
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

from textback.alerts import alert_bursts
from textback.callback import Callbacks, resolve_lost_callbacks
from textback.config import Config
from textback.dispatcher import Dispatcher
from textback.followups import FollowUps
from textback.inbound import InboundHandler
from textback.inbound_journal import REASSEMBLY_TIMEOUT_S, InboundJournal, JournaledText
from textback.logfmt import log
from textback.open_calls import OpenCallKeeper
from textback.outbox import Outbox
from textback.pipeline import CallPipeline
from textback.sdnotify import Notifier, watchdog_interval_s
from textback.senders import Sender
from textback.sip_inbound import inbound_from_esl
from textback.staff import Mailer, StaffDesk
from textback.staff_mail import MailQueue
from textback.store import Store

logger = logging.getLogger("textback.daemon")

STATUS_FILE = "status.json"


class Daemon:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 notifier: Notifier | None = None, modem_poll_s: float = 1.0) -> None:
        self.config = config
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.modem_poll_s = modem_poll_s
        self.store: Store | None = None
        self.supervisors: dict[str, Any] = {}
        self.senders: dict[str, Sender] = {}
        self.listener: Any = None
        self.pipeline: CallPipeline | None = None
        self.dispatcher: Dispatcher | None = None
        self.inbound: InboundHandler | None = None
        self.journal: InboundJournal | None = None
        self.agi_server: Any = None
        self.open_calls: OpenCallKeeper | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._handlers: set[asyncio.Task[Any]] = set()

    def stop(self) -> None:
        self._stop.set()

    # ---------------------------------------------------------------- build

    async def _open_store(self) -> tuple[Store, Outbox]:
        path = self.config.store.path
        path.parent.mkdir(parents=True, exist_ok=True)
        store = await Store.open(path, policy=self.config.policy)
        policy = self.config.policy
        outbox = Outbox(store, max_attempts=policy.max_attempts,
                        retry_base_s=policy.retry_base_s, retry_max_s=policy.retry_max_s,
                        resend_unconfirmed=policy.resend_unconfirmed)
        return store, outbox

    def _build_modems(self) -> None:
        from textback.modem.supervisor import ModemSupervisor
        from textback.senders.modem import ModemSender

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

    def _build_listener(self, pipeline: CallPipeline) -> None:
        pbx, sip = self.config.pbx, self.config.sip
        tracker = self.config.trunks.tracker_config()
        if pbx.type == "asterisk":
            from textback.ami_listener.ami_client import AmiClient
            from textback.senders.sip_asterisk import AmiMessageSender

            # calls in progress are kept in the store across a restart (textback.open_calls)
            client = AmiClient(pbx.host, pbx.port, pbx.user, self._pbx_secret(), tracker,
                               on_outcome=pipeline.submit,
                               on_call_started=self.open_calls.report
                               if self.open_calls is not None else None,
                               ping_timeout=pbx.ping_timeout_s)
            client.stream.on_user_event = self._on_ami_user_event  # inbound SIP MESSAGE
            self.listener = client
            if sip is not None:
                self.senders["sip"] = AmiMessageSender(
                    client.send_action, destination=sip.destination, from_uri=sip.from_uri,
                    is_connected=client.logged_in.is_set)
        else:
            from textback.ami_listener.esl_client import EslClient
            from textback.senders.sip_freeswitch import EslChatSender

            esl = EslClient(pbx.host, pbx.port, self._pbx_secret(), tracker,
                            on_outcome=pipeline.submit, on_message=self._on_esl_message,
                            ping_timeout=pbx.ping_timeout_s)
            self.listener = esl
            if sip is not None:
                self.senders["sip"] = EslChatSender(esl, destination=sip.destination,
                                                    from_uri=sip.from_uri)

    # ---------------------------------------------------------------- inbound hooks

    async def _on_modem_message(self, text: JournaledText, on_stored: Any) -> None:
        """A text from a modem, out of the inbound journal (textback.inbound_journal)."""
        assert self.inbound is not None
        await self.inbound.receive(number=text.number, text=text.text, did=None,
                                   via=text.modem, at=text.at, on_stored=on_stored)

    def _on_modem_report(self, sender: str) -> Callable[[Any], Any]:
        async def handle(report: Any) -> None:
            assert self.inbound is not None
            await self.inbound.delivery_report(sender, report.mr, report.category, self.clock())
        return handle

    def _on_esl_message(self, event: Any) -> None:
        text = inbound_from_esl(event)
        if self.inbound is None or text is None:
            return  # our own chat echo, or not a text
        self._spawn(self.inbound.receive(number=text.number, text=text.body, did=text.did,
                                         via="sip", at=self.clock()))

    def _spawn(self, coro: Any) -> None:
        """Run a handler task, keeping a reference so it is not collected mid-flight."""
        task = asyncio.get_running_loop().create_task(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _on_ami_user_event(self, msg: Any) -> None:
        if self.inbound is None or msg.get("UserEvent") != "TextbackMessage":
            return
        fields = {k: msg.get(k) or "" for k in ("From", "To", "Exten", "Body")}
        self._spawn(self.inbound.receive_ami_user_event(fields, at=self.clock()))

    # ---------------------------------------------------------------- run

    async def run(self) -> int:
        store, outbox = await self._open_store()
        self.store = store
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
        self.dispatcher, self.pipeline = dispatcher, pipeline
        # staff e-mail is queued in the store and sent by its own loop (MTA down: retried)
        mail = MailQueue(store, Mailer(self.config.email), clock=self.clock)
        staff = StaffDesk(store, outbox, self.config, mailer=mail.mailer, mail=mail,
                          wake=dispatcher.wake)
        self.inbound = InboundHandler(store, outbox, self.config, clock=self.clock,
                                      wake=dispatcher.wake, followups=followups, staff=staff)
        # every PDU a modem receives is journaled raw before it is decoded or handled
        self.journal = InboundJournal(store, self._on_modem_message,
                                      resume=self.inbound.resume, clock=self.clock,
                                      reassembly_timeout_s=REASSEMBLY_TIMEOUT_S)
        self.open_calls = OpenCallKeeper(store, self.clock)
        self._build_listener(pipeline)
        if self.config.pbx.type == "asterisk":  # before it connects: its resync needs them
            self.listener.seed(await self.open_calls.load("asterisk"))
        self.inbound.callbacks = self._build_callbacks(store, followups)
        await resolve_lost_callbacks(store, outbox, self.config, now)
        await followups.recover(now)
        # The SIP sender rides on the listener's connection, so it exists only now; the
        # dispatcher took a copy of the senders when it was built.
        dispatcher.senders.update(self.senders)
        await self._start_agi(pipeline)
        for name, supervisor in self.supervisors.items():
            supervisor.pdu_journal = self.journal.sink(name)
            supervisor.report_handlers.append(self._on_modem_report(name))
            supervisor.start()
        # a burst alert pending from before a restart still goes out
        await alert_bursts(store, outbox, self.config, self.clock())
        undecided = await store.undecided_calls()
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
            asyncio.create_task(self._run_listener(), name="listener"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
        ]
        self.notifier.ready(f"listening to {self.config.pbx.type} at "
                            f"{self.config.pbx.host}:{self.config.pbx.port}")
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

    def _build_callbacks(self, store: Store, followups: FollowUps) -> Callbacks:
        """Callback on reply rides on the listener's PBX link (AMI Originate / ESL bgapi)."""
        async def placed(number: str, did: str, at: float) -> None:
            await followups.cancel(number, "callback", at, did=did)

        listener = self.listener
        if self.config.pbx.type == "asterisk":
            callbacks = Callbacks(store, "asterisk", clock=self.clock,
                                  send_action=listener.send_action, on_placed=placed)
            listener.stream.on_originate_response = callbacks.on_originate_response
            return callbacks
        return Callbacks(store, "freeswitch", clock=self.clock, bgapi=listener.bgapi,
                         on_placed=placed)

    async def _start_agi(self, pipeline: CallPipeline) -> None:
        """FastAGI trigger beside the AMI/ESL listener; the store's unique call key and the
        pipeline's duplicate check make a call reported by both paths one call."""
        agi = self.config.agi
        if not agi.enabled:
            return
        from textback.agi.server import FastAgiServer

        async def on_outcome(outcome: Any) -> None:
            pipeline.submit(outcome)

        self.agi_server = FastAgiServer(on_outcome, host=agi.host, port=agi.port,
                                        paths=agi.paths,
                                        default_region=self.config.trunks.default_region)
        await self.agi_server.start()
        log(logger, logging.INFO, "agi_listening", host=agi.host, port=agi.port)

    async def _run_listener(self) -> None:
        await self.listener.run()

    async def _heartbeat(self) -> None:
        """Feed the systemd watchdog and write the status file ``textback status`` reads."""
        interval = watchdog_interval_s() or 5.0
        while True:
            self.notifier.watchdog()
            await self.write_status()
            await asyncio.sleep(min(interval, 5.0))

    async def write_status(self) -> None:
        modems = {}
        for name, supervisor in self.supervisors.items():
            h = supervisor.health()
            info = h.info
            modems[name] = {
                "state": h.state, "error": h.error, "port": h.port,
                "model": getattr(info, "model", None),
                "signal": getattr(info, "signal", None),
                "operator": getattr(info, "operator", None),
                "registration": getattr(info, "registration", None),
                "reopens": h.reopens, "resets": h.resets,
            }
        status = {
            "pid": os.getpid(), "at": self.clock(), "modems": modems,
            "pbx": {"type": self.config.pbx.type, "host": self.config.pbx.host,
                    "port": self.config.pbx.port,
                    "connected": _listener_connected(self.listener)},
            "backlog": self.pipeline.backlog if self.pipeline else 0,
            "in_flight": self.dispatcher.in_flight if self.dispatcher else 0,
        }
        path = self.config.store.path.parent / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(status, indent=1))
            tmp.replace(path)

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        log(logger, logging.INFO, "stopping", in_flight=self.dispatcher.in_flight
            if self.dispatcher else 0)
        if self.listener is not None:
            self.listener.stop()
        if self.agi_server is not None:
            await self.agi_server.close()
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
            await self.write_status()
            await self.store.close()
        log(logger, logging.INFO, "stopped")


def _listener_connected(listener: Any) -> bool | None:
    for attr in ("logged_in", "connected"):
        event = getattr(listener, attr, None)
        if isinstance(event, asyncio.Event):
            return event.is_set()
    return None


def _read_pin(path: Path | None) -> str | None:
    if path is None:
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else None


async def run_daemon(config: Config) -> int:
    """Run until SIGTERM/SIGINT; the exit status."""
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)
    return await daemon.run()
