"""The lab's ``textback.toml``: one builder for every daemon the tests, the benches and the
demo start.

Each of them needs the same office — the captures' Asterisk on loopback, the fictional
``+1555`` numbers of the captures allowed, one simulated modem, Acme Plumbing's DID open
around the clock — and differs in a handful of keys (a port, a settle time, a cap). Copying
the whole file into each of them let the copies drift from each other and from the schema;
here the office is written once and each caller states only what it changes::

    text = lab_config_toml(ami_port=port, modem_port=sim.port, store=tmp / "textback.db",
                           trunks={"settle_s": 0}, policy={"send_delay_s": 2})

Overrides merge into the base section by section: a table's keys are replaced one by one, a
key or table set to ``None`` is removed, and an array of tables (``modem``, ``did``) is
replaced whole. The result goes through the real config loader like any admin's file, so a
builder that drifts from the schema fails loudly.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LAB_SECRET = "lab-only-secret"
LAB_DID = "+15559870000"
LAB_TEMPLATE = ("Sorry we missed your call - Acme Plumbing. Book at {booking_url} or reply "
                "here. Reply STOP to opt out")

_BASE: dict[str, Any] = {
    "pbx": {"type": "asterisk", "host": "127.0.0.1", "port": 5038, "user": "textback",
            "secret": LAB_SECRET},
    "trunks": {"asterisk_contexts": ["from-trunk"], "default_region": "US"},
    "modem": [{"name": "a", "port": "/dev/ttyUSB0", "profile": "generic"}],
    "policy": {
        "send_delay_s": 0,
        "short_abandon_s": 3,
        # the captures' fictional +1555 numbers, which the number plan calls invalid: lab only
        "test_number_prefixes": ["+1555"],
    },
    "did": [{"number": LAB_DID, "business": "Acme Plumbing",
             "booking_url": "https://acme.example/book", "senders": ["modem:a"]}],
    "hours": {"timezone": "America/New_York", "always_open": True},
    "store": {"path": "textback.db"},
}


def lab_config(*, ami_port: int | None = None, modem_port: str | os.PathLike[str] | None = None,
               store: str | os.PathLike[str] | None = None, **sections: Any) -> dict[str, Any]:
    """The lab office as a dict, with ``sections`` merged over it (see the module doc)."""
    cfg = copy.deepcopy(_BASE)
    if ami_port is not None:
        cfg["pbx"]["port"] = ami_port
    if modem_port is not None:
        cfg["modem"][0]["port"] = str(modem_port)
    if store is not None:
        cfg["store"]["path"] = str(store)
    for name, value in sections.items():
        _merge(cfg, name, value)
    return cfg


def lab_config_toml(**kwargs: Any) -> str:
    """:func:`lab_config` written as TOML."""
    return to_toml(lab_config(**kwargs))


def write_lab_config(path: Path, **kwargs: Any) -> Path:
    """Write the lab config to ``path`` with mode 600, as check-config wants a file holding a
    secret; returns ``path``."""
    text = lab_config_toml(**kwargs)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def _merge(cfg: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        cfg.pop(name, None)
    elif isinstance(value, Mapping) and isinstance(cfg.get(name), dict):
        for key, sub in value.items():
            _merge(cfg[name], key, sub)
    else:
        cfg[name] = copy.deepcopy(value)


# ---------------------------------------------------------------- a small TOML writer
# tomllib only reads; the lab's values are strings, numbers, booleans, arrays, tables and
# arrays of tables, which is all this writes.

def to_toml(cfg: Mapping[str, Any]) -> str:
    """``cfg`` as TOML text that :mod:`tomllib` reads back to the same dict."""
    lines: list[str] = []
    _table(lines, (), cfg)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    for key, value in table.items():
        if not _is_table(value) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if _is_table(value):
            lines.append("")
            lines.append(f"[{'.'.join(_key(p) for p in (*path, key))}]")
            _table(lines, (*path, key), value)
        elif _is_table_array(value):
            for item in value:
                lines.append("")
                lines.append(f"[[{'.'.join(_key(p) for p in (*path, key))}]]")
                _table(lines, (*path, key), item)


def _key(key: str) -> str:
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | os.PathLike):
        # JSON's escapes are TOML's, but for DEL, which TOML also forbids raw
        return json.dumps(os.fspath(value), ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"lab config: cannot write {type(value).__name__} {value!r} as TOML")
