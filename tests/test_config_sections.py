"""Each config section is declared once, beside the code that uses it (issue 12).

A section's keys, types, defaults and checks live in one frozen dataclass (textback.schema
``setting``); the loader's schema and the typed object both come from it. These tests hold
that: the schema table of each section IS the dataclass's, every field of a built section
comes from the file or is one the loader completes on purpose, and the declarations sit in
the packages that use them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from textback.config import (
    SCHEMA,
    DidConfig,
    LogConfig,
    RetentionConfig,
    SipConfig,
    StaffConfig,
    StoreConfig,
    WebConfig,
    WebhookConfig,
    parse_config,
)
from textback.inbound.settings import EmailConfig
from textback.modem.settings import ModemConfig
from textback.outbound.settings import PolicyConfig
from textback.pbx.asterisk.agi_settings import AgiConfig
from textback.pbx.settings import PbxConfig, TrunksConfig
from textback.schema import section_table
from textback.testing.lab_config import lab_config_toml

SECTIONS = {
    "pbx": PbxConfig, "trunks": TrunksConfig, "modem": ModemConfig, "sip": SipConfig,
    "policy": PolicyConfig, "did": DidConfig, "agi": AgiConfig, "store": StoreConfig,
    "retention": RetentionConfig, "webhook": WebhookConfig, "log": LogConfig,
    "web": WebConfig, "email": EmailConfig,
}
HOME = {  # where each section is declared: beside the code that uses it
    PolicyConfig: "textback.outbound.settings", PbxConfig: "textback.pbx.settings",
    TrunksConfig: "textback.pbx.settings", ModemConfig: "textback.modem.settings",
    EmailConfig: "textback.inbound.settings", AgiConfig: "textback.pbx.asterisk.agi_settings",
}


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_the_schema_of_a_section_is_its_declaration(name: str) -> None:
    table = SCHEMA.fields[name].table
    assert table is not None
    declared = section_table(SECTIONS[name])
    assert table.fields.keys() == declared.fields.keys()
    for key, field in declared.fields.items():
        got = table.fields[key]
        assert (got.kind, got.default, got.required) == (field.kind, field.default,
                                                         field.required), (name, key)


def test_nested_tables_are_declared_once_too() -> None:
    did = SCHEMA.fields["did"].table
    assert did is not None and did.fields["staff"].table is not None
    assert did.fields["staff"].table.fields.keys() == section_table(StaffConfig).fields.keys()


def test_sections_live_beside_their_code() -> None:
    for cls, module in HOME.items():
        assert cls.__module__ == module, cls


def test_file_units_are_converted_once_in_the_declaration(tmp_path: Path) -> None:
    """Keys written in other units are converted by the declaration, so the default and a
    configured value go through the same conversion."""
    assert PolicyConfig().cooldown_s == 24 * 3600.0
    assert PolicyConfig().stale_after_s == 3600.0
    config = parse_config(lab_config_toml(store=tmp_path / "t.db",
                                          policy={"cooldown_h": 2, "stale_after_min": 5}),
                          tmp_path / "t.toml", check_permissions=False)
    assert (config.policy.cooldown_s, config.policy.stale_after_s) == (7200.0, 300.0)
    assert config.policy.kind_day_caps["help"] == 1  # the per-kind defaults kept


def test_a_built_config_has_every_declared_field(tmp_path: Path) -> None:
    config = parse_config(lab_config_toml(store=tmp_path / "t.db"), tmp_path / "t.toml",
                          check_permissions=False)
    for obj in (config.pbx, config.trunks, config.policy, config.modems[0], config.dids[0],
                config.agi, config.email, config.store, config.retention, config.log,
                config.web):
        for f in dataclasses.fields(obj):
            assert hasattr(obj, f.name)
    assert config.pbx.port == 5038 and config.dids[0].callback == config.dids[0].number
