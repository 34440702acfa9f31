"""The one exception the PDU codec raises, in a module of its own so every codec part shares it."""

from __future__ import annotations

from textback.errors import TextbackError


class PduError(TextbackError, ValueError):
    """A PDU that cannot be decoded, or a number/text/option that cannot be encoded.

    The message names what is wrong and, when decoding, the octet offset (counted from the
    first octet of the hex given, SMSC part included) where it went wrong. Callers catch this
    one type: the codec never lets IndexError, UnicodeError or the like escape.
    """
