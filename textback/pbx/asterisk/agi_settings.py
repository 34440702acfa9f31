"""``[agi]``: the FastAGI trigger, declared once beside it (textback.schema ``setting``).

The token is read by the config loader (inline or from ``token_file``, with the same
permission rules as every secret) and handed in as a computed field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textback.schema import Secret, positive, setting


@dataclass(frozen=True, slots=True)
class AgiConfig:
    """The FastAGI trigger (for PBXes where AMI is not available); off by default.

    ``token``: the secret every request's ``agi://`` URL must carry (``?token=…``), from
    ``token`` or ``token_file``; required when enabled. ``allow_remote``: a bind address
    off loopback is an error unless set (then a warning): the token is the only lock.
    """

    enabled: bool = setting("bool", False)
    host: str = setting("str", "127.0.0.1")
    port: int = setting("int", 4573, check=positive)
    paths: tuple[str, ...] = setting("str_list", ["missed"])
    token: Secret | None = setting("str", None, convert=Secret)
    token_file: Path | None = setting("str", None, convert=Path)
    allow_remote: bool = setting("bool", False)
