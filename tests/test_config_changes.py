"""What a reload changes (textback.config.changes) and what the daemon hands its services
(Daemon.apply_config): the pure part of issue 16 item 5, without a process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from textback.config import Config, parse_config
from textback.config.changes import (
    changed_keys,
    hot_config,
    keep_open_senders,
    needs_restart,
)
from textback.daemon import Daemon
from textback.testing.lab_config import LAB_DID, lab_config_toml


def config(store: str = "/nonexistent/textback.db", **sections: Any) -> Config:
    text = lab_config_toml(store=store, **sections)
    return parse_config(text, Path("/etc/textback/textback.toml"), check_permissions=False)


def did(**extra: Any) -> list[dict[str, Any]]:
    return [{"number": LAB_DID, "business": "Acme Plumbing",
             "booking_url": "https://acme.example/book", "senders": ["modem:a"], **extra}]


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    yield
    root.setLevel(before)


def test_the_same_file_changes_nothing() -> None:
    assert changed_keys(config(), config()) == []


def test_each_changed_key_is_named_as_the_admin_writes_it() -> None:
    old = config()
    new = config(pbx={"host": "127.0.0.2"}, policy={"caller_day_cap": 7},
                 modem=[{"name": "a", "port": "/dev/ttyTEXTBACK-a", "profile": "generic"}],
                 did=did(templates={"business_hours": "Hi from {business}. Reply STOP to "
                                                      "opt out"}),
                 hours={"holidays": ["2026-12-25"]}, log={"level": "debug"})
    keys = changed_keys(old, new)
    # the DID has no [did.hours]: it takes [hours], so its hours changed too
    assert keys == ["pbx.host", "modem[1].port", "policy.caller_day_cap",
                    "did[1].templates", "did[1].hours", "hours.holidays", "log.level"]
    assert [k for k in keys if needs_restart(k)] == ["pbx.host", "modem[1].port"]


def test_keys_in_other_units_are_named_by_the_key_that_sets_them() -> None:
    new = config(policy={"cooldown_h": 12}, email={"from": "desk@acme.example"},
                 hours={"always_open": False, "mon": "08:00-12:00",
                        "holidays": ["2026-12-25", "01-01"]})
    assert changed_keys(config(), new) == [
        "policy.cooldown_h", "did[1].hours", "hours.mon..sun", "hours.holidays",
        "email.from"]


def test_an_added_did_is_one_change() -> None:
    two = [*did(), {"number": "+15559870002", "business": "Acme Heating",
                    "senders": ["modem:a"]}]
    assert changed_keys(config(), config(did=two)) == ["did"]


def test_hot_config_keeps_what_is_open_and_takes_the_rest() -> None:
    running = config()
    new = config(pbx={"host": "127.0.0.2"}, store="/elsewhere/textback.db",
                 policy={"caller_day_cap": 7})
    hot = hot_config(running, new)
    assert hot.pbx == running.pbx and hot.store == running.store
    assert hot.policy.caller_day_cap == 7


def test_a_did_never_gets_a_sender_that_is_not_open() -> None:
    """A modem added in the same reload opens only at a restart: until then the DIDs keep
    texting through what is open (a text given to an unknown sender would fail for good)."""
    running = config()
    two = [{"name": "a", "port": "/dev/ttyUSB0", "profile": "generic"},
           {"name": "b", "port": "/dev/ttyUSB1", "profile": "generic"}]
    new = config(modem=two, did=did(senders=["modem:b", "modem:a"]))
    hot, waiting = keep_open_senders(hot_config(running, new), running, ["modem:a"])
    assert waiting == ["did[1].senders"]
    assert hot.dids[0].senders == ("modem:a",)  # what it had
    assert hot.modems == running.modems
    same, none = keep_open_senders(running, running, ["modem:a"])
    assert none == [] and same.dids == running.dids


def test_apply_config_sets_the_log_level_unless_the_flag_pinned_it(root_level: None) -> None:
    daemon = Daemon(config())
    daemon.apply_config(config(log={"level": "DEBUG"}))
    assert logging.getLogger().level == logging.DEBUG
    daemon.apply_config(config())  # [log] level removed: back to the default
    assert logging.getLogger().level == logging.INFO
    pinned = Daemon(config(), log_level="WARNING")  # textback run --log-level WARNING
    pinned.apply_config(config(log={"level": "DEBUG"}))
    assert logging.getLogger().level == logging.WARNING


def test_log_level_must_be_a_level() -> None:
    from textback.config import ConfigError

    with pytest.raises(ConfigError, match=r"log\.level"):
        config(log={"level": "loud"})
