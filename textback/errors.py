"""The one root of every error textback raises on purpose.

An admin's tools and the daemon's top level catch :class:`TextbackError` to tell an expected
failure (a bad config, a modem that does not answer, a PBX link that dropped, a store on a
full disk) — reported as one clear line — from a bug, which keeps its traceback. Each
package's own root derives from it, and each adapter raises only the errors its module
documents: the AMI client :class:`~textback.pbx.asterisk.client.AmiError`, the ESL client
:class:`~textback.pbx.freeswitch.client.EslError`, the modem stack
:class:`~textback.modem.errors.ModemError` and the PDU codec
:class:`~textback.modem.pdu_error.PduError`, a sender
:class:`~textback.sender.SendError`, the store
:class:`~textback.store.StoreUnavailable`, the config
:class:`~textback.config.ConfigError`.
"""

from __future__ import annotations


class TextbackError(Exception):
    """Something textback expected could go wrong did; ``str()`` is a line for a person."""
