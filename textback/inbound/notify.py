"""Staff notifications on the channels an office already uses, through Apprise.

Offices live in ntfy, Gotify, Matrix, Telegram, Slack or Teams as much as in e-mail, and
Apprise (https://github.com/caronc/apprise) is the maintained library made for exactly
this: one URL per channel (``ntfy://ntfy.example/frontdesk``, ``tgram://bottoken/chatid``),
100+ services behind one call. ``[did.staff] notify`` lists those URLs; every forward and
possible-opt-out prompt that goes to staff e-mail also goes to each of them, through the
same durable queue (textback.inbound.staff_mail: written first, retried with backoff, given
up after a day, one row per URL so a dead ntfy server never re-sends the Telegram message).

The URLs hold tokens: the store keeps a digest of each (``url_key``), the URL is looked up
in the config when sending, and logs name the scheme only. Apprise's own logger is kept at
WARNING (its debug lines may quote a URL's path); its warnings name the host only.
"""

from __future__ import annotations

import asyncio
import logging

from textback.config import Config, url_key, url_scheme
from textback.errors import TextbackError


class NotifyFailed(TextbackError):
    """Apprise did not deliver a notification; the message names the scheme, never the URL
    (the queue retries)."""


def notify_urls(config: Config) -> dict[str, str]:
    """Every ``[did.staff] notify`` URL by its key (what the queue's rows hold)."""
    return {url_key(u.reveal()): u.reveal() for did in config.dids for u in did.staff.notify}


class AppriseNotifier:
    """Hands one notification to one Apprise URL, in a worker thread (Apprise's plugins
    use blocking HTTP/SMTP clients; the event loop never waits on them)."""

    def __init__(self) -> None:
        quiet = logging.getLogger("apprise")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        self.sent = 0
        self.failed = 0

    async def deliver(self, url: str, title: str, body: str) -> None:
        """Raises NotifyFailed when the URL is not one Apprise knows or the service did not
        take the notification."""
        await asyncio.to_thread(self._deliver_blocking, url, title, body)

    def _deliver_blocking(self, url: str, title: str, body: str) -> None:
        import apprise  # imported here: it loads 100+ plugins, needed only when notifying

        scheme = url_scheme(url)
        channel = apprise.Apprise()
        if not channel.add(url):
            self.failed += 1
            raise NotifyFailed(f"{scheme}: not a URL Apprise can use (check it with "
                               f"`apprise -vv -b test '{scheme}://...'`)")
        try:
            taken = bool(channel.notify(body=body, title=title))
        except Exception as exc:  # a plugin's bug; its text may quote the URL
            taken = False
            why = f"{type(exc).__name__} in Apprise"
        else:
            why = "the service did not take the notification"
        if not taken:
            self.failed += 1
            raise NotifyFailed(f"{scheme}: {why}")
        self.sent += 1

