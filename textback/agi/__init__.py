"""FastAGI server: the dialplan-driven missed-call trigger for PBXes without AMI access."""
