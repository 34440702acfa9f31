"""``textback modem probe [--config PATH] [--port PATH] [--json]``: what each modem is and
what is wrong with it.

Which ports: those given with --port; otherwise the [[modem]] ports of the config first
(--config, default $TEXTBACK_CONFIG or /etc/textback/textback.toml), then every device
under /dev/serial/by-id not already probed (one device under two names, e.g. the udev name
/dev/textback-modem0 and its by-id link, counts once: compared by the path it resolves to).
A modem often exposes several interfaces and only one or two answer AT.

A port the running daemon holds is not opened: the daemon has it exclusively and a second
conversation on it would garble the daemon's. The probe says which daemon (pid) holds it
and shows that modem's last health from the daemon's status file instead.

For each modem: model, firmware, IMEI, SIM state and ICCID, signal, registration,
operator, SMSC, storage and the problems found, each a sentence that names the fix. --json
prints one JSON array (an empty one when no modem was found). Exit status 0 when every
modem found is usable, 1 when one has a problem or none was found, 2 when the config given
with --config (or $TEXTBACK_CONFIG) cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textback.config import DEFAULT_PATH, Config, ConfigError, ModemConfig, load_config
from textback.modem.driver import ModemDriver
from textback.modem.errors import ModemError
from textback.modem.status import ModemInfo

BY_ID = Path("/dev/serial/by-id")
UDEV_RULE = "systemd/99-textback-modem.rules"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("modem", help="GSM modem tools (probe)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="modem_command", metavar="ACTION", required=True)
    probe = sub.add_parser("probe", help="find modems and say what is wrong")
    probe.add_argument("--config", type=Path, metavar="PATH",
                       help=f"config whose [[modem]] ports are probed first (default "
                            f"$TEXTBACK_CONFIG or {DEFAULT_PATH})")
    probe.add_argument("--port", action="append", metavar="PATH",
                       help="serial port to probe (repeatable); default: the configured "
                            "ports, then /dev/serial/by-id/*")
    probe.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                       help="per-command time limit (default 3)")
    probe.add_argument("--json", action="store_true",
                       help="one JSON array, one object per modem ([] when none is found)")
    probe.set_defaults(func=run_probe)


def candidate_ports(given: list[str] | None, by_id: Path | None = None) -> list[str]:
    """``given``, else every device under ``by_id`` (default /dev/serial/by-id), sorted."""
    if given:
        return list(given)
    by_id = by_id or BY_ID
    if not by_id.is_dir():
        return []
    return sorted(str(p) for p in by_id.iterdir())


@dataclass(frozen=True)
class Target:
    """A port to probe, and the [[modem]] block that names it (None: not configured)."""

    port: str
    modem: ModemConfig | None = None


def probe_targets(given: list[str] | None, config: Config | None,
                  by_id: Path | None = None) -> list[Target]:
    """The ports to probe, in order, each device once (by the path it resolves to): the
    given ones; else the configured ones, then the by-id links to any other device."""
    configured = {os.path.realpath(m.port): m for m in (config.modems if config else ())}
    out: list[Target] = []
    seen: set[str] = set()
    ports = list(given) if given else [m.port for m in (config.modems if config else ())]
    if not given:
        ports += candidate_ports(None, by_id)
    for port in ports:
        resolved = os.path.realpath(port)
        if resolved not in seen:
            seen.add(resolved)
            out.append(Target(port, configured.get(resolved)))
    return out


async def probe_port(port: str, timeout: float, baudrate: int = 115200) -> ModemInfo:
    """Open, initialise (which also reads the health fields), read the IMEI and ICCID,
    close. Never raises. No PIN is entered here: a wrong one would cost one of the SIM's
    three tries each time the probe runs (the daemon enters the configured one, once)."""
    if not os.path.exists(port):
        return ModemInfo(port=port, problems=[
            f"{port} does not exist: is the modem plugged in (lsusb)? For a udev name, is "
            f"the rule installed and does it match this modem ({UDEV_RULE}, docs/modem.md)?"])
    driver = ModemDriver(port, baudrate=baudrate, command_timeout=timeout,
                         sim_ready_timeout=timeout)
    try:
        await driver.open()
    except ModemError as exc:
        return ModemInfo(port=port, problems=[str(exc)])
    try:
        info = await driver.initialise()
        await driver.read_ids(info)
        return info
    except ModemError as exc:
        info = driver.info
        info.problems.append(f"not a working modem port: {exc}")
        return info
    finally:
        await driver.close()


# ------------------------------------------------------------------ the running daemon


@dataclass(frozen=True)
class DaemonView:
    """What the running daemon's status file says about the modems it holds."""

    pid: int
    at: float
    modems: dict[str, dict[str, Any]]

    def holding(self, port: str) -> tuple[str, dict[str, Any]] | None:
        """(modem name, last health) of the daemon's modem on ``port``, if it has one (the
        status file keys modems by sender: ``modem:a``)."""
        resolved = os.path.realpath(port)
        for sender, health in self.modems.items():
            held = health.get("port") if isinstance(health, dict) else None
            if isinstance(held, str) and os.path.realpath(held) == resolved:
                return sender.removeprefix("modem:"), health
        return None


def running_daemon_view(config: Config | None, now: float) -> DaemonView | None:
    """The daemon using the config's store, from its status file; None when none runs."""
    if config is None:
        return None
    from textback.cli.send import running_daemon
    from textback.daemon import status_path

    pid = running_daemon(config, now)
    if pid is None:
        return None
    try:
        status = json.loads(status_path(config.store.path).read_text(encoding="utf-8"))
        modems = status.get("modems") or {}
        at = float(status["at"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return DaemonView(pid, at, modems if isinstance(modems, dict) else {})


def _held_problems(health: dict[str, Any]) -> list[str]:
    if health.get("state") == "ready":
        return []
    return [f"the daemon reports this modem {health.get('state') or 'unknown'}"
            + (f": {health['error']}" if health.get("error") else "")]


def held_summary(pid: int, port: str, health: dict[str, Any], age_s: float) -> str:
    """``the daemon (pid N) holds PORT; its last health (2 s ago): ready, model …``."""
    facts = [str(health.get("state") or "unknown")]
    if health.get("error"):
        facts.append(f"error {health['error']}")
    for key in ("model", "signal", "registration", "operator"):
        if health.get(key) is not None:
            value = f"{health[key]}/31" if key == "signal" else health[key]
            facts.append(f"{key} {value}")
    return (f"the daemon (pid {pid}) holds {port}; its last health ({age_s:.0f} s ago): "
            + ", ".join(facts))


# ------------------------------------------------------------------ output


def _show(value: object) -> str:
    return "-" if value is None else str(value)


def _title(target: Target, config: Config | None) -> str:
    if target.modem is None or config is None:
        return target.port
    return f"{target.port}  (modem {target.modem.name} in {config.source})"


def format_info(info: ModemInfo, title: str | None = None) -> str:
    signal = ("-" if info.signal_csq is None else
              f"{info.signal_csq}/31" + (f" ({info.signal_dbm} dBm)" if info.signal_dbm else ""))
    model = " ".join(x for x in (info.manufacturer, info.model) if x) or None
    lines = [
        title or f"{info.port}",
        f"  model:        {_show(model)}",
        f"  firmware:     {_show(info.firmware)}",
        f"  IMEI:         {_show(info.imei)}",
        f"  SIM:          {_show(info.sim)}",
        f"  ICCID:        {_show(info.iccid)}",
        f"  signal:       {signal}",
        f"  registration: {_show(info.registration)}",
        f"  operator:     {_show(info.operator)}",
        f"  SMSC:         {_show(info.smsc)}",
        f"  storage:      {_show(info.storage)}",
        f"  reports:      {_show(info.report_mode)}",
    ]
    if info.problems:
        lines += [f"  PROBLEM: {p}" for p in info.problems]
    else:
        lines.append("  status:       ready")
    return "\n".join(lines)


def _load(args: argparse.Namespace) -> tuple[Config | None, bool]:
    """(config, ok). A config named with --config or $TEXTBACK_CONFIG must load (else its
    problems are printed and ok is False); the default one is used when it loads, and the
    probe goes on without it otherwise (it also serves before anything is configured)."""
    explicit = args.config is not None or bool(os.environ.get("TEXTBACK_CONFIG"))
    try:
        return load_config(args.config), True
    except ConfigError as exc:
        if explicit:
            print(exc.render(), file=sys.stderr)
            return None, False
        if exc.path.exists():
            first = exc.issues[0].message if exc.issues else str(exc)
            print(f"note: {exc.path} not used ({first}); probing {BY_ID} only",
                  file=sys.stderr)
        return None, True


def run_probe(args: argparse.Namespace) -> int:
    config, ok = _load(args)
    if not ok:
        return 2
    targets = probe_targets(args.port, config)
    if not targets:
        where = f"no [[modem]] in {config.source} and " if config is not None else ""
        print(f"no modem found: {where}{BY_ID} is empty or missing. Is the modem plugged "
              "in (lsusb)? Give the port with --port.", file=sys.stderr)
        if args.json:
            print("[]")
        return 1
    now = time.time()
    daemon = running_daemon_view(config, now)
    results: list[dict[str, Any]] = []
    texts: list[str] = []
    for target in targets:
        name = target.modem.name if target.modem is not None else None
        held = daemon.holding(target.port) if daemon is not None else None
        if daemon is not None and held is not None:
            held_name, health = held
            age = max(0.0, now - daemon.at)
            summary = held_summary(daemon.pid, target.port, health, age)
            problems = _held_problems(health)
            results.append({"port": target.port, "name": name or held_name,
                            "configured": target.modem is not None,
                            "held_by_daemon": daemon.pid, "summary": summary,
                            "health": health, "health_age_s": round(age, 1),
                            "problems": problems})
            texts.append("\n".join([_title(target, config), f"  {summary}",
                                    *[f"  PROBLEM: {p}" for p in problems]]))
            continue
        baud = target.modem.baud if target.modem is not None else 115200
        info = asyncio.run(probe_port(target.port, args.timeout, baud))
        results.append({**info.to_dict(), "name": name, "configured": target.modem is not None,
                        "held_by_daemon": None})
        texts.append(format_info(info, _title(target, config)))
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
    else:
        print("\n".join(texts))
    return 1 if any(r["problems"] for r in results) else 0
