"""``textback pdu decode|encode``: the PDU codec on the command line.

Output contract (external checks rely on it; keep it exactly):

  textback pdu decode HEX            one JSON object per PDU, field names of
  textback pdu decode < FILE         ../shared/modem-data/pdu-vectors.jsonl (direction, smsc,
                                     number, text, encoding, udh, timestamp, message_reference,
                                     status, tpdu_length, plus extra keys)
  textback pdu encode --to NUMBER --text TEXT [--smsc NUMBER] [--status-report]
                      [--validity MINUTES]
                                     one JSON object per part: {"pdu": HEX with the SMSC
                                     octets, "tpdu_length": N}, what AT+CMGS=N then HEX sends

A PDU that cannot be decoded prints {"error": "..."} in its place (so line N of the output
still belongs to PDU N) and a line on stderr; the others are still decoded; the exit status
is 1 when any failed. An invalid number or option prints the reason on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from textback.modem.pdu import PduError, decode_pdu, encode_submit


class _TextSafeParser(argparse.ArgumentParser):
    """An ArgumentParser that takes the word after --text/--to/--smsc as its value even when it
    starts with '-' (plain argparse reads ``--text -5%`` as a missing value plus an option)."""

    VALUE_OPTIONS = ("--text", "--to", "--smsc")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None:
            joined: list[str] = []
            it = iter(args)
            for arg in it:
                if arg in self.VALUE_OPTIONS:
                    value = next(it, None)
                    joined.append(arg if value is None else f"{arg}={value}")
                else:
                    joined.append(arg)
            args = joined
        return super().parse_known_args(args, namespace)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pdu",
        help="decode SMS PDUs or encode a text as SMS-SUBMIT PDUs (JSON out)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="pdu_command", metavar="ACTION", required=True,
                           parser_class=_TextSafeParser)

    d = sub.add_parser("decode", help="decode PDUs given as arguments or one per line on stdin")
    d.add_argument("hex", nargs="*", metavar="HEX",
                   help="PDU in hex, SMSC octets first (none: read one per line on stdin)")
    d.add_argument("--no-smsc", action="store_true",
                   help="the PDUs are bare TPDUs without the SMSC octets")
    d.add_argument("--direction", choices=["deliver", "submit", "status"],
                   help="read TP-MTI as this type instead of guessing")
    d.set_defaults(func=run_decode)

    e = sub.add_parser("encode", help="encode a text to a number as SMS-SUBMIT part(s)")
    e.add_argument("--to", required=True, metavar="NUMBER",
                   help="destination: +digits (international) or digits (national)")
    e.add_argument("--text", required=True, metavar="TEXT")
    e.add_argument("--smsc", metavar="NUMBER", help="SMSC number (default: the SIM's)")
    e.add_argument("--status-report", action="store_true", help="request a delivery report")
    e.add_argument("--validity", type=int, metavar="MINUTES",
                   help="relative validity period, rounded up to what TP-VP can express")
    e.add_argument("--ref-bits", type=int, choices=[8, 16], default=8,
                   help="concatenation reference size (default 8)")
    e.add_argument("--concat-ref", type=int, metavar="N",
                   help="concatenation reference (default: picked per run)")
    e.set_defaults(func=run_encode)


def _write(obj: dict[str, Any]) -> None:
    # A lone surrogate (half an emoji split across parts by a sender) cannot be UTF-8: write
    # it as a JSON escape such as \\udc80, which backslashreplace produces exactly.
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(line.encode("utf-8", "backslashreplace"))


def _inputs(args: argparse.Namespace) -> list[str]:
    if args.hex:
        return list(args.hex)
    return [line.strip() for line in sys.stdin if line.strip()]


def run_decode(args: argparse.Namespace) -> int:
    failed = 0
    for n, item in enumerate(_inputs(args), 1):
        try:
            decoded = decode_pdu(item, has_smsc=not args.no_smsc, direction=args.direction)
        except PduError as exc:
            failed += 1
            _write({"error": str(exc), "input": n})
            sys.stdout.flush()
            print(f"textback pdu decode: PDU {n}: {exc}", file=sys.stderr)
            continue
        _write(decoded.to_dict())
    sys.stdout.flush()
    return 1 if failed else 0


def run_encode(args: argparse.Namespace) -> int:
    try:
        parts = encode_submit(
            args.to, args.text, smsc=args.smsc, status_report=args.status_report,
            validity_minutes=args.validity, ref_bits=args.ref_bits, concat_ref=args.concat_ref,
        )
    except PduError as exc:
        print(f"textback pdu encode: {exc}", file=sys.stderr)
        return 2
    for part in parts:
        _write({"pdu": part.pdu, "tpdu_length": part.tpdu_length})
    sys.stdout.flush()
    return 0
