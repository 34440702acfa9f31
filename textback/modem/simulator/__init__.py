"""A GSM modem emulator on a pty with dialect profiles and failure injection.

``ModemSimulator`` (host.py) is what tests, the demo and the benchmarks start;
``ModemEngine`` (engine.py) is its sans-IO brain; ``PROFILES`` (profiles.py) the dialects.
``python -m textback.modem.simulator --profile sim800l --link /tmp/modem`` runs one by hand.
"""

from textback.modem.simulator.engine import AcceptedPdu, ModemEngine
from textback.modem.simulator.host import ModemSimulator
from textback.modem.simulator.profiles import PROFILES, Profile, Timing

__all__ = ["PROFILES", "AcceptedPdu", "ModemEngine", "ModemSimulator", "Profile", "Timing"]
