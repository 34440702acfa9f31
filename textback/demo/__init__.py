"""``make demo``: the real daemon against a replayed PBX capture and a simulated modem."""
