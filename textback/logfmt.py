"""One log line per step in key=value form, safe for journald and for grep.

Values come from the outside world (caller IDs, message bodies, modem replies), so every
value is quoted when needed and control characters are escaped: a CR, LF, ESC or Ctrl-Z in
a caller ID can never forge a log line. Keys whose name says secret are never printed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

SECRET_KEYS = frozenset({"secret", "password", "pin", "puk", "token", "auth"})

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_value(value: Any) -> str:
    """Render ``value`` as a logfmt value: bare when simple, else quoted with escapes."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    s = str(value)
    out = []
    needs_quotes = s == ""
    for ch in s:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
            needs_quotes = True
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or 0x200B <= code <= 0x200F \
                or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069 or code == 0xFEFF:
            out.append(f"\\u{code:04x}")
            needs_quotes = True
        else:
            if ch in " =":
                needs_quotes = True
            out.append(ch)
    text = "".join(out)
    return f'"{text}"' if needs_quotes else text


def kv(event: str, **fields: Any) -> str:
    """``event=<event> k=v …`` with secrets masked."""
    parts = [f"event={escape_value(event)}"]
    for key, value in fields.items():
        if key.lower() in SECRET_KEYS:
            value = "***"
        parts.append(f"{key}={escape_value(value)}")
    return " ".join(parts)


def log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields))


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Plain lines on stderr: journald adds its own timestamp and unit name."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
