"""systemd notification (READY=1, WATCHDOG=1, STOPPING=1, STATUS=…) without a dependency.

The protocol is one datagram to the AF_UNIX socket named by NOTIFY_SOCKET (a leading '@'
means the abstract namespace). Outside systemd the variable is unset and every call is a
no-op, so the daemon can call these unconditionally.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends sd_notify datagrams when running under systemd; silent otherwise."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        self._address = addr or None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines; returns False when not under systemd or on error."""
        if self._address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(payload)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify(ready=1, **({"status": status} if status else {}))

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, which systemd's
        Type=notify-reload requires; Type=notify takes it too); READY=1 ends the reload."""
        return self.notify(reloading=1, monotonic_usec=time.monotonic_ns() // 1000)

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self) -> bool:
        return self.notify(stopping=1)

    def status(self, text: str) -> bool:
        return self.notify(status=text)


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC (systemd's advice), or None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000
