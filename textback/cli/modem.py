"""``textback modem probe [--port PATH]``: what each modem is and what is wrong with it.

Without --port every device under /dev/serial/by-id is tried (the stable names; a modem
often exposes several interfaces and only one or two answer AT). For each: model, firmware,
SIM state, signal, registration, operator, SMSC, storage and the problems found, each a
sentence that names the fix. Exit status 0 when every modem found is usable, 1 when one
has a problem, 2 when none was found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from textback.modem.driver import ModemDriver
from textback.modem.errors import ModemError
from textback.modem.status import ModemInfo

BY_ID = Path("/dev/serial/by-id")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("modem", help="GSM modem tools (probe)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="modem_command", metavar="ACTION", required=True)
    probe = sub.add_parser("probe", help="find modems and say what is wrong")
    probe.add_argument("--port", action="append", metavar="PATH",
                       help="serial port to probe (repeatable); default: /dev/serial/by-id/*")
    probe.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                       help="per-command time limit (default 3)")
    probe.add_argument("--json", action="store_true", help="one JSON object per modem")
    probe.set_defaults(func=run_probe)


def candidate_ports(given: list[str] | None, by_id: Path = BY_ID) -> list[str]:
    if given:
        return list(given)
    if not by_id.is_dir():
        return []
    return sorted(str(p) for p in by_id.iterdir())


async def probe_port(port: str, timeout: float) -> ModemInfo:
    """Open, initialise (which also reads the health fields), close. Never raises."""
    driver = ModemDriver(port, command_timeout=timeout, sim_ready_timeout=timeout)
    try:
        await driver.open()
    except ModemError as exc:
        return ModemInfo(port=port, problems=[str(exc)])
    try:
        return await driver.initialise()
    except ModemError as exc:
        info = driver.info
        info.problems.append(f"not a working modem port: {exc}")
        return info
    finally:
        await driver.close()


def _show(value: object) -> str:
    return "-" if value is None else str(value)


def format_info(info: ModemInfo) -> str:
    signal = ("-" if info.signal_csq is None else
              f"{info.signal_csq}/31" + (f" ({info.signal_dbm} dBm)" if info.signal_dbm else ""))
    model = " ".join(x for x in (info.manufacturer, info.model) if x) or None
    lines = [
        f"{info.port}",
        f"  model:        {_show(model)}",
        f"  firmware:     {_show(info.firmware)}",
        f"  SIM:          {_show(info.sim)}",
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


def run_probe(args: argparse.Namespace) -> int:
    ports = candidate_ports(args.port)
    if not ports:
        print(f"no modem found: {BY_ID} is empty or missing. Is the modem plugged in "
              "(lsusb)? Give the port with --port.", file=sys.stderr)
        return 2
    infos = [asyncio.run(probe_port(port, args.timeout)) for port in ports]
    for info in infos:
        if args.json:
            print(json.dumps(info.to_dict(), ensure_ascii=False))
        else:
            print(format_info(info))
    return 1 if any(i.problems for i in infos) else 0
