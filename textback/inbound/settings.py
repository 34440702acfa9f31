"""``[email]``: the local MTA that staff e-mail goes to, declared once beside the staff
mail queue that uses it (textback.schema ``setting``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from textback.schema import positive, setting, tcp_port


def emails(values: Any) -> str | None:
    bad = [v for v in values if not re.fullmatch(r"[^@\s]+@[^@\s]+", v)]
    return f"not e-mail addresses: {', '.join(map(repr, bad))}" if bad else None


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """The local MTA staff notifications are handed to (smtplib, no auth, no TLS)."""

    host: str = setting("str", "127.0.0.1")
    port: int = setting("int", 25, check=tcp_port)
    sender: str = setting("str", "textback@localhost", key="from",
                          check=lambda v: emails([v]))
    timeout_s: float = setting("float", 10.0, check=positive)
