"""The daemon's own web window: the inbox and dashboard (server.py), /metrics and /healthz
(metrics.py). Served by the daemon process; loopback by default."""
