"""The errors the Asterisk adapter raises, in a module of their own so every part of the
adapter (client, MessageSend sender, Originate) shares them without importing each other."""

from __future__ import annotations

from textback.errors import TextbackError


class AmiError(TextbackError):
    """The AMI link failed (connection lost, action refused, timeout)."""


class AmiLoginError(AmiError):
    """The PBX refused our credentials: retrying will not help."""


class AmiNotConnected(AmiError):
    """No link to send on: the action was NOT written (a sender may safely try again)."""
