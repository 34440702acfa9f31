"""Reliability suite (issue 8): crash safety, modem and PBX faults, hostile input, security,
fuzzing. A quick subset runs in ``make test``; ``make soak`` runs it with ``--soak``."""
