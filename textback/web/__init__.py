"""The office's web app (issue 15): inbox, dashboard, health and the opt-out list
(``server``), and ``/metrics`` and ``/healthz`` (``metrics``), served by the daemon itself on
loopback (``[web]``, docs/web.md).

``auth`` (users, sessions, login links, the login limit) and ``audit`` hold no web framework,
so ``textback user`` uses them without aiohttp; ``server`` is the aiohttp application.
"""
