"""A modem by hand: ``python -m textback.testing.modem_simulator --profile sim800l --link M``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from textback.testing.modem_simulator import PROFILES, ModemSimulator


async def _serve(args: argparse.Namespace) -> None:
    sim = ModemSimulator(args.profile, link=args.link, time_scale=args.time_scale, pin=args.pin)
    await sim.start()
    print(f"{args.profile} modem on {sim.slave_path}" + (f" (link {args.link})" if args.link
                                                          else ""), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m textback.testing.modem_simulator")
    p.add_argument("--profile", default="generic", choices=sorted(PROFILES))
    p.add_argument("--link", help="symlink to create, e.g. /tmp/serial/by-id/usb-SIM800L")
    p.add_argument("--time-scale", type=float, default=1.0, help="0 = instant answers")
    p.add_argument("--pin", help="make the SIM ask for this PIN")
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
