"""Which AMI ``UserEvent``s are texts from a customer, and who sent them to which DID.

Asterisk has no AMI event for a received SIP MESSAGE: the shipped dialplan
(dialplan/asterisk, context ``[textback-message-in]``, the trunk endpoint's
``message_context``) raises ``UserEvent(TextbackMessage,From: …,To: …,Body: …)`` with
``From``/``To`` URI-encoded and the body base64-encoded, because an AMI header value cannot
carry a line break. Any other dialplan context, or an AMI client's ``Action: UserEvent``
(no channel, no Context), could otherwise plant a reply or a STOP for any number, so only
the configured message context is believed.
"""

from __future__ import annotations

import base64
import binascii
import logging
import urllib.parse

from textback import logfmt
from textback.pbx.asterisk.parser import AmiMessage
from textback.pbx.link import TextReceived

log = logging.getLogger("textback.ami")


def text_from_user_event(msg: AmiMessage, message_context: str | None) -> TextReceived | None:
    """The customer's text in a ``TextbackMessage`` UserEvent; None when it did not come
    from ``message_context`` (refused: the caller counts it)."""
    if message_context is not None and (msg.get("Context") or "") != message_context:
        return None
    raw = msg.get("Body") or ""
    try:
        body = base64.b64decode(raw, validate=True).decode("utf-8", "replace")
    except (ValueError, binascii.Error):
        # a hand-edited dialplan that forgot BASE64_ENCODE: keep the text as it came
        logfmt.log(log, logging.WARNING, "inbound_body_not_base64", source="ami",
                   fix="use Body: ${BASE64_ENCODE(${MESSAGE(body)})} in the dialplan")
        body = raw
    sender = urllib.parse.unquote(msg.get("From") or "")
    number = sender.split("sip:", 1)[-1].split("@", 1)[0].split(";", 1)[0] or None
    to = urllib.parse.unquote(msg.get("Exten") or msg.get("To") or "")
    did = to.split("sip:", 1)[-1].split("@", 1)[0] or None
    return TextReceived(number=number, did=did, body=body)
