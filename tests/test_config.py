"""Config: every error class names its key and line; permissions; nearest-name hints."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from textback.config import ConfigError, Secret, load_config, parse_config

GOOD = """\
[pbx]
type = "asterisk"
secret_file = "ami.secret"

[trunks]
asterisk_contexts = ["from-trunk"]
default_region = "US"

[[modem]]
name = "a"
port = "/dev/serial/by-id/usb-modem-a"

[[modem]]
name = "b"
port = "/dev/serial/by-id/usb-modem-b"

[sip]
destination = "pjsip:trunk/sip:{number}@127.0.0.1:5180"

[policy]
send_delay_s = 5
test_number_prefixes = ["+1555"]

[[did]]
number = "+15559870000"
business = "Acme Plumbing"
senders = ["modem:a", "modem:b", "sip"]

[did.templates]
after_hours = "Closed now - {business}. Reply STOP to opt out"

[did.staff]
sms = ["+15551239999"]

[[did]]
number = "+442079460000"
business = "Acme UK"
callback = "+442079460001"

[did.hours]
timezone = "Europe/London"
sat = "10:00-12:00"
holidays = ["12-25", 2026-12-28]

[hours]
timezone = "America/New_York"

[store]
path = "state/textback.db"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600, secret_mode: int = 0o600) -> Path:
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cret\n")
    secret.chmod(secret_mode)
    path = tmp_path / "textback.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def issues(tmp_path: Path, text: str, **kw: int) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text, **kw))
    return [(i.key, i.line, i.message) for i in err.value.issues]


def test_good_config_is_typed(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.pbx.port == 5038 and cfg.pbx.secret == Secret("s3cret")
    assert "s3cret" not in repr(cfg)  # never in a log line
    assert cfg.trunks.tracker_config().trunk_contexts == ("from-trunk",)
    assert [m.sender for m in cfg.modems] == ["modem:a", "modem:b"]
    assert cfg.sip is not None and cfg.sip.from_uri == "sip:{did}@127.0.0.1"
    assert cfg.policy.send_delay_s == 5.0 and cfg.policy.cooldown_s == 86400.0
    us, uk = cfg.dids
    assert us.senders == ("modem:a", "modem:b", "sip") and us.callback == us.number
    assert us.hours.timezone == "America/New_York" and us.region is None  # +1555 is fictional
    assert uk.senders == ("modem:a", "modem:b", "sip") and uk.region == "GB"
    assert uk.hours.timezone == "Europe/London" and (12, 25) in uk.hours.annual_holidays
    assert cfg.did("+442079460000") is uk and cfg.did("+15550000000") is None
    assert cfg.store.path == tmp_path / "state" / "textback.db"
    with pytest.raises(AttributeError):
        cfg.policy.send_delay_s = 1  # type: ignore[misc]


@pytest.mark.parametrize(("old", "new", "key", "line", "message"), [
    # unknown key, with the nearest valid name
    ('send_delay_s = 5', 'send_delay = 5', "policy.send_delay", 21, "did you mean 'send_delay_s'"),
    ('[hours]', '[hour]', "hour", 45, "did you mean 'hours'"),
    ('callback = "+442079460001"', 'calback = "+442079460001"', "did[2].calback", 38,
     "did you mean 'callback'"),
    # wrong types
    ('send_delay_s = 5', 'send_delay_s = "5s"', "policy.send_delay_s", 21,
     "expected a number, got string"),
    ('asterisk_contexts = ["from-trunk"]', 'asterisk_contexts = "from-trunk"',
     "trunks.asterisk_contexts", 6, "expected a list of strings"),
    # bad values
    ('type = "asterisk"', 'type = "asterix"', "pbx.type", 2, "not one of: asterisk, freeswitch"),
    ('number = "+442079460000"', 'number = "02079460000"', "did[2].number", 36, "E.164"),
    ('"modem:b", "sip"]', '"modem:c", "sip"]', "did[1].senders", 27, "unknown sender 'modem:c'"),
    ('Closed now - {business}', 'Closed now - {busness}', "did[1].templates.after_hours", 30,
     "unknown field {busness}"),
    ('Closed now - {business}', 'Closed {business.__class__}', "did[1].templates.after_hours",
     30, "not allowed"),
    ('sat = "10:00-12:00"', 'sat = "22:00-02:00"', "did[2].hours.sat", 42, "past midnight"),
    ('holidays = ["12-25", 2026-12-28]', 'holidays = ["25/12"]', "did[2].hours.holidays", 43,
     "not a date"),
    ('timezone = "America/New_York"', 'timezone = "EST5"', "hours.timezone", 46,
     "unknown time zone"),
    ('name = "b"', 'name = "b"\nbaud = 0', "modem[2].baud", 15, "not a serial rate"),
    ('name = "b"', 'name = "b"\npin = "12"', "modem[2].pin", 15, "4 to 8 digits"),
    ('name = "b"', 'name = "b"\nsend_timeout_s = 2', "modem[2].send_timeout_s", 15,
     "5 to 600 seconds"),
    ('name = "b"', 'name = "b"\nsend_timeout_s = "60"', "modem[2].send_timeout_s", 15,
     "number"),
    ('test_number_prefixes = ["+1555"]', 'test_number_prefixes = ["1555"]',
     "policy.test_number_prefixes", 22, "prefixes"),
    ('sms = ["+15551239999"]', 'sms = ["555-1239"]', "did[1].staff.sms", 33, "E.164"),
    ('port = "/dev/serial/by-id/usb-modem-b"', '', "modem[2].port", 13, "missing"),
])
def test_each_error_names_key_and_line(tmp_path: Path, old: str, new: str, key: str,
                                       line: int, message: str) -> None:
    assert old in GOOD
    found = issues(tmp_path, GOOD.replace(old, new, 1))
    assert len(found) == 1, found
    assert found[0][0] == key and found[0][1] == line and message in found[0][2], found


def test_all_errors_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = GOOD.replace('type = "asterisk"', 'type = 5').replace(
        "send_delay_s = 5", "send_delay_s = -1").replace('[store]', '[stor]')
    found = issues(tmp_path, text)
    assert [(k, line) for k, line, _ in found] == [
        ("pbx.type", 2), ("policy.send_delay_s", 21), ("stor", 48)]


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    found = issues(tmp_path, GOOD.replace('name = "b"', 'name = "b'))
    assert found[0][1] == 14 and "not valid TOML" in found[0][2]


def test_missing_file_and_sections(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    found = issues(tmp_path, "[store]\npath = 'x.db'\n")
    assert {k for k, _, _ in found} == {"pbx", "did"}


def test_inline_secret_in_loose_file_is_refused_with_chmod(tmp_path: Path) -> None:
    text = GOOD.replace('secret_file = "ami.secret"', 'secret = "s3cret"')
    found = issues(tmp_path, text, mode=0o644)
    assert found == [("pbx.secret", 3, found[0][2])]
    assert f"chmod 600 {tmp_path / 'textback.toml'}" in found[0][2]
    assert load_config(write(tmp_path, text, mode=0o600)).pbx.secret == Secret("s3cret")


def test_modem_pin_counts_as_a_secret(tmp_path: Path) -> None:
    text = GOOD.replace('name = "b"', 'name = "b"\npin = "1234"')
    found = issues(tmp_path, text, mode=0o640)
    assert found[0][:2] == ("modem[2].pin", 15) and "chmod 600" in found[0][2]
    # without any secret inside, a readable config file is fine
    assert load_config(write(tmp_path, GOOD, mode=0o644)).modems[1].pin is None


def test_loose_secret_file_is_refused(tmp_path: Path) -> None:
    found = issues(tmp_path, GOOD, secret_mode=0o604)
    assert found[0][:2] == ("pbx.secret_file", 3)
    assert f"chmod 600 {tmp_path / 'ami.secret'}" in found[0][2]


def test_secret_and_secret_file_together(tmp_path: Path) -> None:
    text = GOOD.replace('secret_file = "ami.secret"', 'secret_file = "ami.secret"\nsecret = "x"')
    assert "not both" in issues(tmp_path, text)[0][2]


def test_config_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_config(environ={"TEXTBACK_CONFIG": str(path)}).source == path


def test_parse_without_permission_check() -> None:
    cfg = parse_config(GOOD.replace('secret_file = "ami.secret"', 'secret = "x"'),
                       Path(os.devnull).parent / "t.toml", file_mode=0o644,
                       check_permissions=False)
    assert cfg.pbx.secret == Secret("x")


def test_demo_config_is_valid(tmp_path: Path) -> None:
    """The demo's config, built by the lab config builder, loads through the real loader
    (file mode checks included)."""
    from textback.demo.__main__ import write_config

    cfg = load_config(write_config(tmp_path, 15038, "/dev/pts/7"))
    assert [d.number for d in cfg.dids] == ["+15559870000", "+15559870002", "+15559870003"]
    assert cfg.pbx.port == 15038 and cfg.policy.test_number_prefixes == ("+1555",)


def test_lab_config_writes_toml_that_reads_back_the_same(tmp_path: Path) -> None:
    """The builder's TOML writer: every value kind the lab uses, hostile strings included,
    reads back (tomllib) to the dict it was built from; overrides merge, None removes."""
    import tomllib

    from textback.testing.lab_config import lab_config, to_toml

    cfg = lab_config(ami_port=1, store=tmp_path / "x.db", pbx={"user": None},
                     policy={"country_hour_caps": {"US": 60, "*": 5}},
                     did=[{"number": "+15559870000", "business": 'Q"\\ \x1b\x7f\u202e',
                           "templates": {"business_hours": "Hi {business}"}}])
    assert "user" not in cfg["pbx"] and cfg["pbx"]["port"] == 1
    assert cfg["policy"]["send_delay_s"] == 0  # the base kept beside the override
    assert tomllib.loads(to_toml(cfg)) == cfg


def test_documented_example_is_valid(tmp_path: Path) -> None:
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    match = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert match is not None
    text = match.group(1).replace('"/etc/textback/pbx.secret"', '"ami.secret"').replace(
        'pin_file = "/etc/textback/sim-a.pin"', 'pin = "1234"').replace(
        '"/etc/textback/agi.token"', '"agi.token"').replace(
        '"/etc/textback/n8n.secret"', '"n8n.secret"')
    for name in ("agi.token", "n8n.secret"):
        token = tmp_path / name
        token.write_text("0123456789abcdef0123\n")
        token.chmod(0o600)
    cfg = load_config(write(tmp_path, text))
    assert cfg.dids[0].senders == ("modem:a", "sip")
    assert cfg.policy.deny == ("+1900",) and cfg.hours.timezone == "America/New_York"
    assert [u.reveal().partition(":")[0] for u in cfg.dids[0].staff.notify] == ["ntfy",
                                                                               "tgram"]
    (hook,) = cfg.webhooks
    assert hook.events == {"call.missed", "reply.received", "optout"}
    assert hook.secret.reveal() == "0123456789abcdef0123"


def test_agi_section(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert (cfg.agi.enabled, cfg.agi.host, cfg.agi.port, cfg.agi.paths) == \
        (False, "127.0.0.1", 4573, ("missed",))
    token = tmp_path / "agi.token"
    token.write_text("0123456789abcdef0123\n")
    token.chmod(0o600)
    cfg = load_config(write(tmp_path, GOOD + '\n[agi]\nenabled = true\nport = 4574\n'
                                           'token_file = "agi.token"\n'))
    assert cfg.agi.enabled and cfg.agi.port == 4574
    found = issues(tmp_path, GOOD + '\n[agi]\nenabeld = true\n')
    assert any(key == "agi.enabeld" and "enabled" in msg for key, _, msg in found)


@pytest.mark.parametrize(("new", "message"), [
    ('country_hour_caps = { "US" = 10, "XX" = 3 }', "not region codes: 'XX'"),
    ('country_hour_caps = { "US" = -1 }', "caps must be 0 or more: 'US'"),
    ('country_hour_caps = { "US" = "10" }', "expected a table of integers"),
    ("country_hour_caps = 10", "expected a table of integers"),
    ("burst_calls = -1", "0 or more"),
    ("burst_window_min = 0", "more than 0"),
    ("burst_pause_min = 0", "more than 0"),
])
def test_abuse_cap_keys_are_checked_with_their_line(tmp_path: Path, new: str,
                                                   message: str) -> None:
    old = 'send_delay_s = 5'
    found = issues(tmp_path, GOOD.replace(old, f"{old}\n{new}", 1))
    assert len(found) == 1, found
    key = "policy." + new.split(" =")[0]
    assert found[0][0] == key and found[0][1] == 22 and message in found[0][2], found


def test_abuse_cap_keys(tmp_path: Path) -> None:
    text = GOOD.replace('send_delay_s = 5', 'send_delay_s = 5\nburst_calls = 4\n'
                        'burst_window_min = 2.5\nburst_pause_min = 30\n'
                        'country_hour_caps = { "GB" = 7, "*" = 2 }', 1)
    policy = load_config(write(tmp_path, text)).policy
    assert (policy.burst_calls, policy.burst_window_s, policy.burst_pause_s) == (4, 150.0, 1800.0)
    assert policy.country_hour_cap("GB") == 7 and policy.country_hour_cap("FR") == 2
    defaults = load_config(write(tmp_path, GOOD)).policy
    assert (defaults.burst_calls, defaults.burst_window_s, defaults.burst_pause_s) == \
        (10, 600.0, 3600.0)
    assert defaults.country_hour_cap("US") is None


def test_conversation_keys_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    did = cfg.dids[0]
    assert [str(r) for r in did.follow_ups] == ["+2h", "next-business-day 10:00"]
    assert did.quiet_hours == (21 * 60, 8 * 60)
    assert "call me" in did.callback_words and "leak" in did.urgent_words
    assert did.staff.ring is None and did.staff.dial_context is None
    assert (cfg.email.host, cfg.email.port, cfg.email.sender) == \
        ("127.0.0.1", 25, "textback@localhost")
    assert cfg.policy.handover_after_s == 30.0


def test_conversation_keys(tmp_path: Path) -> None:
    text = GOOD.replace('sms = ["+15551239999"]', 'sms = ["+15551239999"]\n'
                        'ring = "Local/600@from-internal"\ndial_context = "outbound"', 1)
    text = text.replace('senders = ["modem:a", "modem:b", "sip"]',
                        'senders = ["modem:a", "modem:b", "sip"]\nfollow_ups = ["+90m"]\n'
                        'quiet_hours = ""\ncallback_words = ["ring me"]\n'
                        'urgent_words = ["burst pipe"]\n'
                        'follow_up_text = "{business} again. Reply STOP to opt out"', 1)
    text += '\n[email]\nhost = "mail.local"\nport = 2525\nfrom = "pbx@acme.example"\n'
    text = text.replace('send_delay_s = 5', 'send_delay_s = 5\nhandover_after_s = 5', 1)
    cfg = load_config(write(tmp_path, text))
    did = cfg.dids[0]
    assert [r.offset_s for r in did.follow_ups] == [5400.0] and did.quiet_hours is None
    assert did.callback_words == ("ring me",) and did.urgent_words == ("burst pipe",)
    assert did.follow_up_text.startswith("{business} again")
    assert (did.staff.ring, did.staff.dial_context) == ("Local/600@from-internal", "outbound")
    assert (cfg.email.host, cfg.email.port, cfg.email.sender) == \
        ("mail.local", 2525, "pbx@acme.example")
    assert cfg.policy.handover_after_s == 5.0
    # the second DID keeps the defaults
    assert len(cfg.dids[1].follow_ups) == 2


@pytest.mark.parametrize(("new", "message"), [
    ('follow_ups = ["+2x"]', "is not a follow-up rule"),
    ('follow_ups = ["+1h", "+2h", "+3h"]', "at most 2 follow-ups"),
    ('follow_ups = ["next-business-day 25:00"]', "00:00 to 23:59"),
    ('quiet_hours = "9pm-8am"', "is not a range like"),
    ('quiet_hours = "08:00-08:00"', "start and end are the same"),
    ('follow_up_text = "Hi {name}"', "name"),
    ('callback_words = ["call", " "]', "empty word"),
])
def test_conversation_keys_are_checked_with_their_line(tmp_path: Path, new: str,
                                                       message: str) -> None:
    old = 'senders = ["modem:a", "modem:b", "sip"]'
    found = issues(tmp_path, GOOD.replace(old, f"{old}\n{new}", 1))
    assert len(found) == 1, found
    assert found[0][0] == "did[1]." + new.split(" =")[0] and found[0][1] == 28, found
    assert message in found[0][2], found


def test_ping_timeout_and_stale_limit(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.pbx.ping_timeout_s == 10.0 and cfg.policy.stale_after_s == 3600.0
    text = GOOD.replace('[pbx]\n', '[pbx]\nping_timeout_s = 3\n', 1)
    text = text.replace('[policy]\n', '[policy]\nstale_after_min = 0\n', 1)
    cfg = load_config(write(tmp_path, text))
    assert cfg.pbx.ping_timeout_s == 3.0 and cfg.policy.stale_after_s == 0.0
    found = issues(tmp_path, GOOD.replace('[pbx]\n', '[pbx]\nping_timeout_s = 0\n', 1))
    assert any(key == "pbx.ping_timeout_s" for key, _, _ in found)


def test_modem_send_timeout_defaults_to_the_manuals_120_s_and_can_be_set(
        tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD.replace('name = "b"',
                                                   'name = "b"\nsend_timeout_s = 45', 1)))
    assert [m.send_timeout_s for m in cfg.modems] == [120.0, 45.0]


def test_always_open_hours_cover_every_minute_except_holidays(tmp_path: Path) -> None:
    """A 24/7 business (an emergency plumber) says so in one key instead of seven."""
    text = GOOD.replace('[hours]\ntimezone = "America/New_York"\n',
                        '[hours]\ntimezone = "America/New_York"\nalways_open = true\n'
                        'holidays = ["12-25"]\n', 1)
    cfg = load_config(write(tmp_path, text))
    assert all(day == ((0, 1440),) for day in cfg.hours.week)
    sunday_3am = dt.datetime(2026, 11, 22, 3, 0, tzinfo=ZoneInfo("America/New_York"))
    christmas = dt.datetime(2026, 12, 25, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    assert cfg.hours.period(sunday_3am.timestamp()) == "business_hours"
    assert cfg.hours.period(christmas.timestamp()) == "holiday"
    # the DID with its own [did.hours] keeps them; the other inherits always-open
    assert cfg.dids[0].hours is cfg.hours
    assert cfg.dids[1].hours.week[5] == ((600, 720),)


def test_always_open_with_day_keys_is_refused_naming_them(tmp_path: Path) -> None:
    text = GOOD.replace('[did.hours]\ntimezone = "Europe/London"\n',
                        '[did.hours]\ntimezone = "Europe/London"\nalways_open = true\n', 1)
    found = issues(tmp_path, text)
    assert len(found) == 1
    key, line, message = found[0]
    assert key == "did[2].hours.always_open", key  # the second [[did]], counted from 1
    assert "remove sat" in message and line is not None


# --- issue 16 item 1: one secrets model (root:<service group> 0640, or service user 0600)

@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> object:
    """A service user 'svc' whose own group is gid 4242 (the unit's textback:textback)."""
    from textback import secret_files

    ident = secret_files.ServiceIdentity("svc", 4343, "svcgrp", 4242)
    monkeypatch.setattr(secret_files, "service_identity", lambda: ident)
    return ident


def test_secret_file_0640_in_the_service_group_is_accepted(tmp_path: Path, service: object) -> None:
    path = write(tmp_path, GOOD)
    secret = tmp_path / "ami.secret"
    os.chown(secret, 0, 4242)
    secret.chmod(0o640)  # what docs/deploy.md sets up: root:textback 0640
    assert load_config(path).pbx.secret == Secret("s3cret")


def test_inline_secret_config_0640_in_the_service_group_is_accepted(
        tmp_path: Path, service: object) -> None:
    text = GOOD.replace('secret_file = "ami.secret"', 'secret = "s3cret"')
    path = write(tmp_path, text)
    os.chown(path, 0, 4242)
    path.chmod(0o640)
    assert load_config(path).pbx.secret == Secret("s3cret")


@pytest.mark.parametrize(("uid", "gid", "mode", "says"), [
    (0, 0, 0o640, "can be read or changed by group or others"),      # root's group, not svc's
    (0, 4242, 0o660, "can be read or changed by group or others"),   # group may write it
    (0, 4242, 0o644, "can be read or changed by group or others"),   # others may read it
    (0, 0, 0o600, "cannot be read by the service user svc (group svcgrp)"),  # svc locked out
])
def test_secret_file_refusal_names_user_group_and_exact_fix(
        tmp_path: Path, service: object, uid: int, gid: int, mode: int, says: str) -> None:
    path = write(tmp_path, GOOD)
    secret = tmp_path / "ami.secret"
    os.chown(secret, uid, gid)
    secret.chmod(mode)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (issue,) = err.value.issues
    assert issue.key == "pbx.secret_file" and says in issue.message
    assert f"chown root:svcgrp {secret} && chmod 0640 {secret}" in issue.message
    assert f"chown svc {secret} && chmod 600 {secret}" in issue.message


def test_secret_file_owned_by_the_service_user_0600_is_accepted(
        tmp_path: Path, service: object) -> None:
    path = write(tmp_path, GOOD)
    os.chown(tmp_path / "ami.secret", 4343, 4343)
    assert load_config(path).pbx.secret == Secret("s3cret")


def test_deploy_guide_unit_and_code_agree_on_the_secret_model() -> None:
    """The deploy guide's steps (chown root:textback, chmod 0640) are what the code accepts
    (tested above with a stand-in service user) and what the unit's comment says."""
    repo = Path(__file__).resolve().parents[1]
    deploy = (repo / "docs" / "deploy.md").read_text()
    unit = (repo / "systemd" / "textback.service").read_text()
    assert "sudo chown root:textback /etc/textback/pbx.secret" in deploy
    assert "sudo chmod 0640 /etc/textback/pbx.secret" in deploy
    assert "root:textback mode 0640, or textback:textback 0600" in unit
    from textback.secret_files import SERVICE_USER
    assert f"User={SERVICE_USER}" in unit and f"Group={SERVICE_USER}" in unit


def test_pbx_type_freepbx_is_an_alias_of_asterisk(tmp_path: Path) -> None:
    """FreePBX is Asterisk with a web UI: the AMI listener is the same (issue 16 item 7)."""
    cfg = load_config(write(tmp_path, GOOD.replace('type = "asterisk"', 'type = "freepbx"')))
    assert cfg.pbx.type == "asterisk" and cfg.pbx.port == 5038


def test_unknown_pbx_type_lists_the_valid_ones(tmp_path: Path) -> None:
    found = issues(tmp_path, GOOD.replace('type = "asterisk"', 'type = "issabel"'))
    assert found[0][0] == "pbx.type"
    assert "asterisk, freeswitch" in found[0][2] and "freepbx" in found[0][2]


# --- issue 16 item 8: config gaps printed OK before: warnings (or errors) naming key and fix

def _warnings(cfg: object) -> dict[str, str]:
    return {w.key: w.message for w in cfg.warnings}  # type: ignore[attr-defined]


def test_no_hours_warns_that_hours_are_utc(tmp_path: Path) -> None:
    text = GOOD.replace('[hours]\ntimezone = "America/New_York"\n', "")
    text = text.replace("test_number_prefixes", "# test_number_prefixes")
    warned = _warnings(load_config(write(tmp_path, text)))
    assert list(warned) == ["hours"]
    assert "UTC" in warned["hours"] and 'timezone = "America/New_York"' in warned["hours"]
    assert "did[1]" in warned["hours"]  # the DID that falls back to it (did[2] has its own)


def test_fixed_offset_timezone_warns_with_the_iana_name(tmp_path: Path) -> None:
    text = GOOD.replace('timezone = "America/New_York"', 'timezone = "EST"')
    cfg = load_config(write(tmp_path, text))
    assert cfg.hours.timezone == "EST"  # still usable, but:
    msg = _warnings(cfg)["hours.timezone"]
    assert "no daylight saving" in msg and '"America/New_York"' in msg


@pytest.mark.parametrize("zone", ["Etc/GMT+5", "MST", "CST6CDT"])
def test_legacy_zone_names_warn(tmp_path: Path, zone: str) -> None:
    text = GOOD.replace('timezone = "America/New_York"', f'timezone = "{zone}"')
    assert "hours.timezone" in _warnings(load_config(write(tmp_path, text)))


@pytest.mark.parametrize("zone", ["America/New_York", "America/Phoenix", "UTC", "Asia/Tokyo"])
def test_real_zones_do_not_warn(tmp_path: Path, zone: str) -> None:
    text = GOOD.replace('timezone = "America/New_York"', f'timezone = "{zone}"')
    assert "hours.timezone" not in _warnings(load_config(write(tmp_path, text)))


def test_odd_baud_is_an_error_listing_valid_rates(tmp_path: Path) -> None:
    text = GOOD.replace('name = "b"', 'name = "b"\nbaud = 115201')
    found = issues(tmp_path, text)
    assert found[0][:2] == ("modem[2].baud", 15)
    assert "115201" in found[0][2] and "9600" in found[0][2] and "115200" in found[0][2]


def test_lab_only_setting_warns(tmp_path: Path) -> None:
    warned = _warnings(load_config(write(tmp_path, GOOD)))
    assert "lab" in warned["policy.test_number_prefixes"]
    assert "+1555" in warned["policy.test_number_prefixes"]


def test_listen_secret_file_follows_the_same_model(tmp_path: Path, service: object) -> None:
    """`textback listen --secret-file` accepts root:<service group> 0640 and refuses a
    group-readable file of another group with the same chown/chmod hint."""
    from textback.cli.listen import read_secret

    secret = tmp_path / "esl.secret"
    secret.write_text("s3cret\n")
    os.chown(secret, 0, 4242)
    secret.chmod(0o640)
    assert read_secret(secret, "UNUSED_ENV") == "s3cret"
    os.chown(secret, 0, 0)
    with pytest.raises(SystemExit) as err:
        read_secret(secret, "UNUSED_ENV")
    assert f"chown root:svcgrp {secret} && chmod 0640 {secret}" in str(err.value)
