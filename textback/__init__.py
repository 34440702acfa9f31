"""textback: missed-call text-back for self-hosted Asterisk and FreeSWITCH PBXes.

The package is split by job: ``ami_listener`` turns PBX event streams into call outcomes,
``agi`` serves the dialplan-driven FastAGI trigger, ``modem`` speaks AT/PDU to a GSM modem,
and the top-level modules hold config, store, policy, outbox, senders and the CLI.
"""

__version__ = "0.1.0"
