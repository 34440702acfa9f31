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
from typing import Any

from textback.config import Config

# the Config fields a running daemon cannot change without closing what it has open
RESTART_SECTIONS = frozenset({"pbx", "trunks", "modems", "sip", "agi", "store"})
# bookkeeping, not settings
IGNORED = frozenset({"source", "warnings"})
# Config field → the TOML table an admin writes
TOML_NAMES = {"modems": "modem", "dids": "did"}


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
    return out


def _diff(name: str, a: Any, b: Any) -> list[str]:
    if a == b:
        return []
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return [f"{name}.{f.name}" for f in dataclasses.fields(a)
                if getattr(a, f.name) != getattr(b, f.name)]
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return [key for i, (x, y) in enumerate(zip(a, b, strict=True))
                for key in _diff(f"{name}[{i + 1}]", x, y)]
    return [name]


def needs_restart(key: str) -> bool:
    """True for a key of a section a reload cannot apply (``pbx.host``, ``modem[1].port``)."""
    section = key.split(".", 1)[0].split("[", 1)[0]
    fields = {TOML_NAMES.get(s, s) for s in RESTART_SECTIONS}
    return section in fields


def hot_config(running: Config, new: Config) -> Config:
    """The config a reload hands the services: ``new``, except that the sections which need a
    restart keep the running values (so the status file, the gate's own numbers and the
    senders keep describing what is really open until the restart)."""
    return dataclasses.replace(new, **{s: getattr(running, s) for s in RESTART_SECTIONS})
