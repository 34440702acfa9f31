"""What a reload changes: two configs compared key by key, split by what a reload can apply.

``textback run`` reloads its config on SIGHUP (textback.daemon). Some settings are read
afresh for every call and every text (templates, hours, caps, staff, words): the running
services can simply be handed the new config. Others are open connections and files (the
PBX link, the modems' serial ports, the SIP sender riding on the link, the FastAGI socket,
the store): changing them means closing what is open, which can lose a call in flight, so a
reload only reports them and the admin restarts when it suits. This module is the pure part:
which keys differ, and which of them wait for a restart. It compares the typed configs, not
the TOML text, so a comment or a reordered key is no change, and a default written out is
none either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

from textback.config import Config

# the Config fields a running daemon cannot change without closing what it has open
RESTART_SECTIONS = frozenset({"pbx", "trunks", "modems", "sip", "agi", "store"})
# bookkeeping, not settings
IGNORED = frozenset({"source", "warnings"})
# Config field → the TOML table an admin writes
TOML_NAMES = {"modems": "modem", "dids": "did"}
# typed fields stored in other units or shapes than the key that sets them
FIELD_KEYS = {
    ("PolicyConfig", "cooldown_s"): "cooldown_h",
    ("PolicyConfig", "burst_window_s"): "burst_window_min",
    ("PolicyConfig", "burst_pause_s"): "burst_pause_min",
    ("PolicyConfig", "stale_after_s"): "stale_after_min",
    ("EmailConfig", "sender"): "from",
    ("Hours", "week"): "mon..sun",
    ("Hours", "annual_holidays"): "holidays",
}


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose value differs (``policy.caller_day_cap``, ``did[1].templates``,
    ``pbx.host``; a whole ``did`` or ``modem`` when blocks were added or removed), in the
    order of the Config's fields."""
    out: list[str] = []
    for f in dataclasses.fields(old):
        if f.name in IGNORED:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        out += _diff(TOML_NAMES.get(f.name, f.name), a, b)
    return list(dict.fromkeys(out))  # two fields from one key (holidays) name it once


def _diff(name: str, a: Any, b: Any) -> list[str]:
    if a == b:
        return []
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        kind = type(a).__name__
        return [f"{name}.{FIELD_KEYS.get((kind, f.name), f.name)}"
                for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return [key for i, (x, y) in enumerate(zip(a, b, strict=True))
                for key in _diff(f"{name}[{i + 1}]", x, y)]
    return [name]


def needs_restart(key: str) -> bool:
    """True for a key of a section a reload cannot apply (``pbx.host``, ``modem[1].port``)."""
    section = key.split(".", 1)[0].split("[", 1)[0]
    fields = {TOML_NAMES.get(s, s) for s in RESTART_SECTIONS}
    return section in fields


def keep_open_senders(new: Config, previous: Config,
                      open_senders: Collection[str]) -> tuple[Config, list[str]]:
    """``new`` with every DID texting only through senders that are open now, and the keys
    that had to wait for a restart (``did[1].senders``). A DID that names a sender the
    running daemon does not have (a [[modem]] or [sip] added in the same reload: they open
    only at a restart) keeps its previous senders, or, if it is new, the open ones it
    names, else every open one: a text handed to an unknown sender would fail for good."""
    before = {d.number: d.senders for d in previous.dids}
    dids, waiting = [], []
    for i, did in enumerate(new.dids):
        if all(s in open_senders for s in did.senders):
            dids.append(did)
            continue
        waiting.append(f"did[{i + 1}].senders")
        kept = before.get(did.number) or tuple(s for s in did.senders if s in open_senders)
        dids.append(dataclasses.replace(did, senders=kept or tuple(open_senders)))
    return dataclasses.replace(new, dids=tuple(dids)), waiting


def hot_config(running: Config, new: Config) -> Config:
    """The config a reload hands the services: ``new``, except that the sections which need a
    restart keep the running values (so the status file, the gate's own numbers and the
    senders keep describing what is really open until the restart)."""
    return dataclasses.replace(new, **{s: getattr(running, s) for s in RESTART_SECTIONS})
