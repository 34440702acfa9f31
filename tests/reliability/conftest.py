"""``--soak`` (off by default): scale the reliability runs up (``make soak``)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="reliability suite: the long soak run (>= 1000 kills, many more "
                          "fuzz examples) instead of the quick subset")


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--soak"))


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis profiles: quick (a few hundred examples per parser) and soak."""
    from hypothesis import HealthCheck, settings

    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("reliability-quick", max_examples=300, **common)
    settings.register_profile("reliability-soak", max_examples=250_000, **common)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The RELIABILITY.md table, from what this run measured."""
    from tests.reliability.harness import FIGURES

    if not FIGURES:
        return
    w = terminalreporter
    w.section("reliability figures")
    w.write_line("| fault | runs | recovered | lost | duplicated | worst recovery | notes |")
    w.write_line("|---|---|---|---|---|---|---|")
    for f in FIGURES:
        worst = f["worst_recovery_s"]
        notes = ", ".join(f"{k}={v}" for k, v in f.items() if k not in
                          ("fault", "runs", "recovered", "lost", "duplicated",
                           "worst_recovery_s"))
        w.write_line(f"| {f['fault']} | {f['runs']} | {f['recovered']} | {f['lost']} | "
                     f"{f['duplicated']} | {'-' if worst is None else f'{worst:.2f} s'} | "
                     f"{notes} |")
