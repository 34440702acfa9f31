"""Who may report a call over FastAGI: the PBX, proven by a shared secret token.

Why: the FastAGI port is a plain TCP socket. Loopback keeps the network out, not the other
users of the box: before the token, any local process (uid nobody included) could connect
and forge ``missed`` requests, making the office text arbitrary numbers and using up the
hourly caps meant for genuine callers. FastAGI has no authentication of its own, but the
URL is ours: the dialplan's ``AGI(agi://127.0.0.1:4573/missed?token=<token>&status=…)``
reaches us as ``agi_network_script: missed?token=<token>&status=…`` (Asterisk sends the
part after ``host:port/``), so the token travels as the query argument ``token``.

The token is compared in constant time and never logged (neither ours nor the one offered).
"""

from __future__ import annotations

import hmac
import ipaddress

from textback.pbx.asterisk.agi_session import AgiRequest

TOKEN_KEY = "token"
MIN_TOKEN_LENGTH = 16


def offered_token(request: AgiRequest) -> str:
    """The token the request's URL carries ("" when none)."""
    return request.query.get(TOKEN_KEY, "")


def token_matches(request: AgiRequest, token: str) -> bool:
    """True only when the request carries exactly ``token`` (a non-empty secret)."""
    if not token:
        return False
    return hmac.compare_digest(offered_token(request).encode("utf-8"), token.encode("utf-8"))


def is_loopback_host(host: str) -> bool:
    """A bind address only this machine can reach: 127.0.0.0/8, ::1 or ``localhost``.
    A host name other than ``localhost`` may resolve anywhere, so it is not loopback."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
