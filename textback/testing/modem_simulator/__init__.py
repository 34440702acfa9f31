"""A GSM modem emulator on a pty with dialect profiles and failure injection.

``ModemSimulator`` (host.py) is what tests, the demo and the benchmarks start;
``ModemEngine`` (engine.py) is its sans-IO brain; ``PROFILES`` (profiles.py) the dialects.
``python -m textback.testing.modem_simulator --profile sim800l --link /tmp/modem`` runs one by hand.
"""

from textback.testing.modem_simulator.engine import AcceptedPdu, ModemEngine
from textback.testing.modem_simulator.host import ModemSimulator
from textback.testing.modem_simulator.profiles import PROFILES, Profile, Timing

__all__ = ["PROFILES", "AcceptedPdu", "ModemEngine", "ModemSimulator", "Profile", "Timing"]
