"""The errors the FreeSWITCH adapter raises, in a module of their own so every part of the
adapter (client, chat sender, originate) shares them without importing each other."""

from __future__ import annotations

from textback.errors import TextbackError


class EslError(TextbackError):
    """The link failed (closed, timed out, or a command was refused)."""


class EslAuthError(EslError):
    """FreeSWITCH refused the password: fatal, retrying cannot help."""


class EslNotConnected(EslError):
    """No link to send on: the command was NOT written (a sender may safely try again)."""
