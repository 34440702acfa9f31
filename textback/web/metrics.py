"""``GET /metrics`` (Prometheus text format) and ``GET /healthz``, on the daemon's web app.

Why a collector that reads at scrape time rather than counters at every call site: the
store already holds the truth (every call's verdict, every text's state, every opt-out),
and the daemon's objects hold the rest (the PBX link, each modem's signal, each sender).
Reading them when Prometheus asks costs a few grouped queries every 15-60 s, adds nothing
to the send path and can never drift from what ``textback status`` and the report say.
Two things are not in the store and are fed from one place each, the webhook event hub
(textback.webhooks) the daemon already has: the send-latency histogram, observed on
``text.sent`` (the dispatcher's sent path), and inbound texts by keyword class, counted on
``reply.received``.

``/healthz`` answers 200 when the PBX link is up and at least one sender can send, else 503;
its JSON body names what is up and what is down (for a load balancer, a systemd timer or
an uptime checker). Both routes are added by :func:`add_routes` to the app the web server
builds (textback.web.server); neither needs a login, as Prometheus and health checkers have
none: the app listens on loopback by default (docs/metrics.md).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from textback.store import StoreUnavailable, describe_unavailable

# hang-up → handed to the sender: policy.send_delay_s (10 s by default) plus the queue
SEND_LATENCY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 12.5, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0,
                        300.0, 600.0, 1800.0, math.inf)


@dataclass
class Snapshot:
    """What the store says at one scrape (read before the registry renders)."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)  # verdict, reason, n
    texts: list[tuple[str, str, int]] = field(default_factory=list)  # kind, state, n
    opted_out: int = 0
    opt_events: dict[str, int] = field(default_factory=dict)
    webhooks: dict[str, int] = field(default_factory=dict)
    notifications: list[tuple[str, str, int]] = field(default_factory=list)
    readable: bool = True

    @property
    def outbox_depth(self) -> int:
        return sum(n for _, state, n in self.texts if state in ("queued", "sending"))


async def read_snapshot(store: Any) -> Snapshot:
    """The grouped counts; an unreadable store gives an empty snapshot (``readable``
    False) rather than a failed scrape, so the other families still arrive."""
    snap = Snapshot()
    if store is None:
        snap.readable = False
        return snap
    try:
        snap.calls = [(r[0], r[1], r[2]) for r in await store.fetchall(
            "SELECT verdict, reason, count(*) FROM calls GROUP BY verdict, reason")]
        snap.texts = [(r[0], r[1], r[2]) for r in await store.fetchall(
            "SELECT kind, state, count(*) FROM outbox GROUP BY kind, state")]
        row = await store.fetchone("SELECT count(*) FROM opt_outs WHERE opted_out = 1")
        snap.opted_out = int(row[0]) if row else 0
        snap.opt_events = {r[0]: r[1] for r in await store.fetchall(
            "SELECT action, count(*) FROM opt_events GROUP BY action")}
        snap.webhooks = {r[0]: r[1] for r in await store.fetchall(
            "SELECT state, count(*) FROM webhook_deliveries GROUP BY state")}
        snap.notifications = [(r[0], r[1], r[2]) for r in await store.fetchall(
            "SELECT channel, state, count(*) FROM staff_mail GROUP BY channel, state")]
    except (StoreUnavailable, OSError):
        snap.readable = False
    return snap


def _listener_up(listener: Any) -> bool:
    """The PBX link's "logged in" event (AMI ``logged_in``, ESL ``connected``)."""
    for attr in ("logged_in", "connected"):
        event = getattr(listener, attr, None)
        if event is not None and hasattr(event, "is_set"):
            return bool(event.is_set())
    return False


class DaemonCollector(Collector):
    """Every family but the histogram, from the daemon's objects and ``snapshot``."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.snapshot = Snapshot()
        self.inbound: collections.Counter[str] = collections.Counter()

    def collect(self) -> Iterator[Metric]:
        d, snap = self.daemon, self.snapshot
        calls = CounterMetricFamily("textback_calls", "Calls recorded, by verdict and reason",
                                    labels=["verdict", "reason"])
        for verdict, reason, n in snap.calls:
            calls.add_metric([verdict, reason], n)
        yield calls
        texts = GaugeMetricFamily("textback_texts", "Outbox texts by kind and current state",
                                  labels=["kind", "state"])
        for kind, state, n in snap.texts:
            texts.add_metric([kind, state], n)
        yield texts
        yield GaugeMetricFamily("textback_outbox_depth", "Texts queued or being sent",
                                value=snap.outbox_depth)
        yield from self._modems(d)
        senders = GaugeMetricFamily("textback_sender_up", "1 when the sender can send now",
                                    labels=["sender"])
        for name, sender in sorted(getattr(d, "senders", {}).items()):
            senders.add_metric([name], 1 if sender.available() else 0)
        yield senders
        pbx = getattr(getattr(d, "config", None), "pbx", None)
        pbx_type = getattr(pbx, "type", "unknown")
        listener = getattr(d, "listener", None)
        yield _gauge("textback_pbx_up", "1 while the PBX link (AMI/ESL) is logged in",
                     ["pbx"], [pbx_type], 1 if _listener_up(listener) else 0)
        reconnects = CounterMetricFamily("textback_pbx_reconnects",
                                         "PBX link reconnects since the daemon started",
                                         labels=["pbx"])
        reconnects.add_metric([pbx_type], getattr(listener, "reconnects", 0))
        yield reconnects
        inbound = CounterMetricFamily("textback_inbound_texts",
                                      "Customer texts received since the daemon started, by "
                                      "keyword class", labels=["class"])
        for klass in ("none", "optout", "optin", "help", "possible-optout"):
            inbound.add_metric([klass], self.inbound.get(klass, 0))
        for klass, n in sorted(self.inbound.items()):
            if klass not in ("none", "optout", "optin", "help", "possible-optout"):
                inbound.add_metric([klass], n)
        yield inbound
        yield GaugeMetricFamily("textback_opted_out_numbers", "Numbers opted out now",
                                value=snap.opted_out)
        opt = CounterMetricFamily("textback_opt_events", "Opt-outs and opt-ins recorded",
                                  labels=["action"])
        for action in ("optout", "optin"):
            opt.add_metric([action], snap.opt_events.get(action, 0))
        yield opt
        store = getattr(d, "store", None)
        yield CounterMetricFamily("textback_store_errors",
                                  "Store operations refused (locked, disk full, I/O)",
                                  value=getattr(store, "errors", 0))
        up = store is not None and getattr(store, "unavailable", None) is None \
            and snap.readable
        yield GaugeMetricFamily("textback_store_up", "1 while the store reads and writes",
                                value=1 if up else 0)
        hooks = GaugeMetricFamily("textback_webhook_deliveries",
                                  "Webhook deliveries by state", labels=["state"])
        for state in ("queued", "delivered", "failed"):
            hooks.add_metric([state], snap.webhooks.get(state, 0))
        yield hooks
        notes = GaugeMetricFamily("textback_staff_notifications",
                                  "Staff e-mail and Apprise notifications by state",
                                  labels=["channel", "state"])
        for channel, state, n in snap.notifications:
            notes.add_metric([channel, state], n)
        yield notes

    def _modems(self, d: Any) -> Iterator[Metric]:
        up = GaugeMetricFamily("textback_modem_up", "1 when the modem is ready to send",
                               labels=["modem"])
        signal = GaugeMetricFamily("textback_modem_signal_dbm",
                                   "Signal strength (from AT+CSQ), dBm", labels=["modem"])
        registered = GaugeMetricFamily("textback_modem_registered",
                                       "1 when registered on a network (home or roaming)",
                                       labels=["modem"])
        registration = GaugeMetricFamily("textback_modem_registration",
                                         "The modem's network registration (AT+CREG), 1 for "
                                         "the current one", labels=["modem", "registration"])
        for name, supervisor in sorted(getattr(d, "supervisors", {}).items()):
            h = supervisor.health()
            info = h.info
            up.add_metric([name], 1 if h.state == "ready" else 0)
            if getattr(info, "signal_dbm", None) is not None:
                signal.add_metric([name], info.signal_dbm)
            registered.add_metric([name], 1 if getattr(info, "registered", False) else 0)
            registration.add_metric([name, getattr(info, "registration", None) or "unknown"],
                                    1)
        yield from (up, signal, registered, registration)


def _gauge(name: str, doc: str, labels: list[str], values: list[str],
           value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    family.add_metric(values, value)
    return family


class Metrics:
    """One daemon's registry: the collector and the send-latency histogram."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = DaemonCollector(daemon)
        self.registry.register(self.collector)
        self.send_latency = Histogram(
            "textback_send_latency_seconds",
            "Missed call hang-up to its text handed to the sender",
            buckets=SEND_LATENCY_BUCKETS, registry=self.registry)
        hub = getattr(daemon, "hooks", None)
        if hub is not None:
            hub.observers.append(self.observe)

    def observe(self, event: str, data: Mapping[str, Any]) -> None:
        """The webhook hub's observer: ``text.sent`` and ``reply.received`` only."""
        if event == "text.sent" and data.get("latency_s") is not None:
            self.send_latency.observe(float(data["latency_s"]))
        elif event == "reply.received":
            message = data.get("message") or {}
            self.collector.inbound[str(message.get("class") or "none")] += 1

    async def render(self) -> bytes:
        self.collector.snapshot = await read_snapshot(getattr(self.daemon, "store", None))
        return generate_latest(self.registry)

    def health(self) -> tuple[bool, dict[str, Any]]:
        d = self.daemon
        pbx = getattr(getattr(d, "config", None), "pbx", None)
        pbx_up = _listener_up(getattr(d, "listener", None))
        senders = {name: bool(s.available())
                   for name, s in sorted(getattr(d, "senders", {}).items())}
        store = getattr(d, "store", None)
        outage = getattr(store, "unavailable", None)
        ok = pbx_up and any(senders.values())
        down = ([] if pbx_up else ["pbx"]) + [f"sender {n}" for n, up in senders.items()
                                              if not up]
        if not senders:
            down.append("senders (none configured)")
        return ok, {
            "status": "ok" if ok else "unavailable",
            "pbx": {"type": getattr(pbx, "type", None), "up": pbx_up},
            "senders": senders,
            "senders_up": sum(senders.values()),
            "store": {"up": store is not None and outage is None,
                      "error": describe_unavailable(outage.kind) if outage else None},
            "outbox_queued": getattr(d, "outbox_queued", None),
            "down": down,
        }


METRICS_KEY = web.AppKey("textback_metrics", Metrics)


def add_routes(app: web.Application, daemon: Any) -> None:
    """Register ``GET /metrics`` and ``GET /healthz`` for ``daemon`` on ``app``."""
    app[METRICS_KEY] = Metrics(daemon)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)


async def _metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    ok, body = request.app[METRICS_KEY].health()
    return web.json_response(body, status=200 if ok else 503,
                             headers={"Cache-Control": "no-store"})
