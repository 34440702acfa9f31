"""Test doubles for what cannot run here — a PBX and a GSM modem — shared by the tests, the
benchmarks and the demo, each checked against the real captures in ``../shared``."""
