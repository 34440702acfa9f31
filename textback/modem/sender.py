"""The GSM modem as a ``Sender``: one supervised modem, texts as PDUs via AT+CMGS.

Error classes map onto the outbox's two roads: an invalid number (``PduError``) or a
permanent +CMS ERROR (SMSC unknown, barred) is permanent — the next sender takes over; a
modem that is busy, unregistered or briefly lost is transient — retry with backoff, and the
dispatcher hands the row on if the modem stays away. A multi-part text whose first parts
went out before a later part failed is NOT retried (that would text the caller twice): it is
recorded as sent-unconfirmed with the references of the parts that went.
"""

from __future__ import annotations

from textback.modem.driver import SendFailed
from textback.modem.errors import ModemError
from textback.modem.pdu import PduError
from textback.modem.supervisor import ModemSupervisor
from textback.sender import Commit, SendError, SendResult


class ModemSender:
    def __init__(self, supervisor: ModemSupervisor, name: str) -> None:
        self.supervisor = supervisor
        self.name = name

    def available(self) -> bool:
        return self.supervisor.available()

    async def send(self, number: str, text: str, *, status_report: bool = True,
                   did: str | None = None, on_commit: Commit | None = None) -> SendResult:
        try:
            parts = await self.supervisor.send(number, text, status_report=status_report,
                                               on_commit=on_commit)
        except PduError as exc:
            raise SendError(self.name, f"cannot address {number!r}: {exc}",
                            permanent=True) from exc
        except SendFailed as exc:
            if exc.sent:
                return SendResult(sender=self.name, parts=exc.sent[0].parts,
                                  refs=[p.mr for p in exc.sent], confirmed=False,
                                  detail=unconfirmed_detail(exc))
            raise SendError(self.name, str(exc.cause), permanent=not exc.transient) from exc
        except ModemError as exc:
            raise SendError(self.name, str(exc), permanent=not exc.transient) from exc
        return SendResult(sender=self.name, parts=len(parts), refs=[p.mr for p in parts],
                          confirmed=True)


def unconfirmed_detail(exc: SendFailed) -> str:
    """Why a text is sent-unconfirmed, in words an admin reads in the log: which parts the
    network confirmed, and which the modem took but never answered for."""
    total = exc.sent[0].parts
    confirmed = sum(1 for p in exc.sent if p.mr is not None)
    unanswered = len(exc.sent) - confirmed
    said = f"{confirmed} of {total} parts confirmed"
    if unanswered:
        said += f", {unanswered} handed to the modem with no answer"
    return f"{said}: {exc.cause}"
