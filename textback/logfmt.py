"""One log line per step in key=value form, safe for journald and for grep.

Values come from the outside world (caller IDs, message bodies, modem replies), so every
value is quoted when needed and control characters are escaped: a CR, LF, ESC or Ctrl-Z in
a caller ID can never forge a log line. Keys whose name says secret are never printed.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Mapping
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


def log(logger: logging.Logger, level: int, event: str, *, exc_info: bool = False,
        **fields: Any) -> None:
    """One ``event=<event> k=v`` line at ``level``; ``exc_info`` adds the traceback (as one
    escaped ``exc=`` value, see :class:`LogfmtFormatter`)."""
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields), exc_info=exc_info)


# sd-daemon.h: SD_CRIT <2>, SD_ERR <3>, SD_WARNING <4>, SD_INFO <6>, SD_DEBUG <7>
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority journald reads from a ``<N>`` line prefix."""
    for threshold, prio in _PRIORITIES:
        if levelno >= threshold:
            return prio
    return 7


def stream_is_journal(stream: Any, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal: ``$JOURNAL_STREAM`` ("device:inode", set by
    systemd for a service whose stderr goes to journald) names this very file. Comparing
    the inode keeps a child process that inherited the variable but writes elsewhere (a
    pipe, a terminal) from getting ``<N>`` prefixes."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError, io.UnsupportedOperation):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class LogfmtFormatter(logging.Formatter):
    """``event=… level=… logger=… k=v …``, one line per record, ``<N>`` first for journald.

    A record not made by :func:`log` (free text from a library such as panoramisk or asyncio)
    becomes ``event=log text="…"``, and a traceback becomes one escaped ``exc=`` value, so
    every line is key=value and a traceback never spills over lines without a priority.
    """

    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("event="):
            event, _, rest = message.partition(" ")
        else:
            event, rest = "event=log", f"text={escape_value(message)}"
        parts = [event, f"level={record.levelname.lower()}",
                 f"logger={escape_value(record.name)}"]
        if rest:
            parts.append(rest)
        if record.exc_info:
            parts.append(f"exc={escape_value(self.formatException(record.exc_info))}")
        line = " ".join(parts)
        return f"<{priority(record.levelno)}>{line}" if self.journal else line


def setup_logging(level: str = "INFO", stream: Any = None,
                  environ: Mapping[str, str] | None = None) -> None:
    """key=value lines on stderr: journald adds its own timestamp and unit name, and reads
    each line's priority from its ``<N>`` prefix when stderr is the journal."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(LogfmtFormatter(journal=stream_is_journal(out, environ)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
