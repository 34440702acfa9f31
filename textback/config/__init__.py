"""``textback.toml``: load, validate, and hand the daemon typed, frozen settings.

Validation follows Home Assistant's rule that a config error must say where to look: every
problem names the dotted key and its line, unknown keys get the nearest valid name, and all
problems are reported at once (``ConfigError.issues``). A file that holds a secret (the PBX
secret, a SIM PIN, any ``secret_file`` / ``pin_file``) must be private to the service user
(root:<its group> 0640, or its own 0600: textback.secret_files); otherwise it is refused
naming the user and group and the chown/chmod that fixes it. Secrets are wrapped in
:class:`Secret`, whose repr never shows the value, so logging a config object cannot leak one.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from textback import secret_files
from textback.config.schema import Checker, ConfigIssue, Field, LineIndex, Table, dotted
from textback.errors import TextbackError
from textback.inbound.keywords import DEFAULT_URGENT_WORDS
from textback.numbers import to_e164
from textback.outbound.followup_rules import (
    DEFAULT_FOLLOW_UPS,
    DEFAULT_QUIET,
    DEFAULT_QUIET_SPAN,
    DEFAULT_RULES,
    DEFAULT_TEXT,
    FollowUpRule,
    Quiet,
    RuleError,
    parse_quiet,
    parse_rules,
)
from textback.outbound.hours import DAYS, DEFAULT_WEEK, Hours, HoursError, check_timezone, parse_day
from textback.outbound.templates import TEMPLATE_KINDS, check_template
from textback.pbx.asterisk.agi_access import MIN_TOKEN_LENGTH, is_loopback_host
from textback.pbx.outcome import MISSED_REASONS
from textback.pbx.stream import (
    DEFAULT_EXTERNAL_CONTEXTS,
    DEFAULT_EXTERNAL_PROFILES,
    DEFAULT_SETTLE_S,
    DEFAULT_TRUNK_CONTEXTS,
    TrackerConfig,
)

DEFAULT_PATH = Path("/etc/textback/textback.toml")
DEFAULT_STORE = Path("/var/lib/textback/textback.db")
DEFAULT_PORTS = {"asterisk": 5038, "freeswitch": 8021}
# [[modem]] send_timeout_s: AT+CMGS "max response time" is 60 s in the SIM800 Series AT
# Command Manual V1.09 (4.2.5) and "120s, determined by network" in Quectel's AT command
# manuals (WCDMA UGxx 9.8, the same family as the EC25's); the longer one by default.
# Under 5 s would declare texts unconfirmed that the network is still taking (2-3 s a part).
DEFAULT_SEND_TIMEOUT_S = 120.0
MIN_SEND_TIMEOUT_S = 5.0
MAX_SEND_TIMEOUT_S = 600.0
# a reply that is only one of these asks for a callback (textback.inbound.callback)
DEFAULT_CALLBACK_WORDS = ("call", "call me", "call back", "callback", "call me back",
                          "please call", "please call me")


class ConfigError(TextbackError):
    """The config cannot be used; ``issues`` lists every problem with its line."""

    def __init__(self, path: Path, issues: list[ConfigIssue]) -> None:
        self.path = path
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.path}: {len(self.issues)} error(s)"
        return "\n".join([head] + [f"  {i.format(str(self.path))}" for i in self.issues])


class Secret:
    """A secret string that never shows itself in repr/str (logs, tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --------------------------------------------------------------------------- typed result


@dataclass(frozen=True, slots=True)
class PbxConfig:
    type: str
    host: str
    port: int
    user: str
    secret: Secret | None
    secret_file: Path | None
    # a link that answers nothing for this long (AMI Ping / ESL api status) is dead
    ping_timeout_s: float = 10.0
    # how long `textback run` waits for the PBX login before telling systemd READY anyway
    # (with a STATUS saying the link is missing); below the unit's TimeoutStartSec
    ready_timeout_s: float = 30.0
    # the PBX's own call records, read after a restart or reconnect for the calls that
    # ended while textback was away: Asterisk CEL (cel_sqlite3_custom .db, cel_custom
    # .csv), FreeSWITCH CDR (mod_cdr_sqlite .db, mod_cdr_csv .csv); None: no recovery
    records: Path | None = None


@dataclass(frozen=True, slots=True)
class TrunksConfig:
    asterisk_contexts: tuple[str, ...]
    asterisk_endpoints: tuple[str, ...]
    freeswitch_profiles: tuple[str, ...]
    freeswitch_contexts: tuple[str, ...]
    settle_s: float
    default_region: str | None
    # the dialplan context whose UserEvent(TextbackMessage) is a genuine inbound text
    asterisk_message_context: str = "textback-message-in"
    # an open call older than this is given up (recorded as ignored/expired, not texted)
    max_call_age_h: float = 4.0

    def tracker_config(self) -> TrackerConfig:
        """The listener's view of these settings."""
        return TrackerConfig(
            trunk_contexts=self.asterisk_contexts,
            trunk_endpoints=self.asterisk_endpoints,
            external_profiles=self.freeswitch_profiles,
            external_contexts=self.freeswitch_contexts,
            settle_s=self.settle_s,
            default_region=self.default_region,
            max_call_age_s=self.max_call_age_h * 3600.0,
        )


@dataclass(frozen=True, slots=True)
class ModemConfig:
    name: str
    port: str
    baud: int
    pin: Secret | None
    pin_file: Path | None
    smsc: str | None
    profile: str | None  # simulator dialect (demo/tests only)
    # how long the modem may take to answer a PDU (+CMGS: <mr>) before the text is recorded
    # sent-unconfirmed; the vendor manuals give 60 s (SIM800) to 120 s (EC25)
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    # the SIM's own number (MSISDN), if known: never a destination (textback.outbound.gate)
    number: str | None = None

    @property
    def sender(self) -> str:
        return f"modem:{self.name}"


@dataclass(frozen=True, slots=True)
class SipConfig:
    """Texts through the PBX's own trunk. ``destination`` / ``from_uri`` hold {number} / {did}."""

    destination: str
    from_uri: str
    profile: str | None  # FreeSWITCH sofia profile for chat


# [policy] kind_day_caps defaults: at most this many texts of each kind to one number in
# 24 h. A HELP answer once a day is plenty (200 HELPs must not cost 200 texts); an opt-out or
# opt-in confirmation twice (STOP, START, STOP in one day still confirms); the FCC's one
# clarifying text after a possible opt-out once; a staff answer
# relayed to a customer and a manual `textback send` are people typing, capped generously.
DEFAULT_KIND_DAY_CAPS: Mapping[str, int] = {
    "help": 1, "optout-confirm": 2, "optin-confirm": 2, "relay": 20, "manual": 10,
    "staff-answer": 20, "possible-optout-clarify": 1,
}
# the text kinds a per-kind cap may name (textback.outbound.gate.KINDS lists their rules)
TEXT_KINDS = ("textback", "followup", "help", "optout-confirm", "optin-confirm", "relay",
              "manual", "staff-forward", "staff-answer", "burst-alert", "callback-unknown",
              "possible-optout-clarify")


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    send_delay_s: float
    short_abandon_s: float
    cooldown_s: float
    caller_day_cap: int
    prefix_hour_cap: int
    prefix_digits: int
    global_hour_cap: int
    skip_fixed_line: bool
    allowed_countries: tuple[str, ...]
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    test_number_prefixes: tuple[str, ...]
    skip_after_failed_deliveries: int
    resend_unconfirmed: bool
    max_attempts: int
    retry_base_s: float
    retry_max_s: float
    # abuse caps (issue 6): a burst of missed calls from one prefix pauses it
    burst_calls: int = 10  # 0: no burst detection
    burst_window_s: float = 600.0
    burst_pause_s: float = 3600.0
    country_hour_caps: Mapping[str, int] = field(default_factory=dict)  # "*": any other
    handover_after_s: float = 30.0  # a sender unavailable this long hands its texts on
    # a missed call that ended longer ago than this is not texted (e.g. decided after a long
    # outage): "sorry we missed your call" hours later reads as spam; 0 = no limit
    stale_after_s: float = 3600.0
    # texts of one kind to one number per 24 h (textback.outbound.gate); 0 or absent: no such cap
    kind_day_caps: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_KIND_DAY_CAPS))

    def country_hour_cap(self, country: str | None) -> int | None:
        """The hourly cap for texts to numbers of ``country`` (ISO alpha-2), None if none."""
        if country is not None and country in self.country_hour_caps:
            return self.country_hour_caps[country]
        return self.country_hour_caps.get("*")


@dataclass(frozen=True, slots=True)
class StaffConfig:
    sms: tuple[str, ...]
    email: tuple[str, ...]
    # callback on reply: what the PBX rings first (Asterisk channel such as
    # "Local/600@from-internal", FreeSWITCH dial string such as "group/sales@example.com")
    # and the dialplan context the customer's number is then dialled in; None: no callback
    ring: str | None = None
    dial_context: str | None = None


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """The local MTA staff notifications are handed to (smtplib, no auth, no TLS)."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "textback@localhost"
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class DidConfig:
    number: str
    business: str
    callback: str
    booking_url: str
    text_reasons: frozenset[str]
    senders: tuple[str, ...]
    templates: Mapping[str, str | None]
    staff: StaffConfig
    hours: Hours
    follow_ups: tuple[FollowUpRule, ...] = DEFAULT_FOLLOW_UPS
    quiet_hours: Quiet | None = DEFAULT_QUIET_SPAN
    follow_up_text: str = DEFAULT_TEXT
    callback_words: tuple[str, ...] = DEFAULT_CALLBACK_WORDS
    urgent_words: tuple[str, ...] = DEFAULT_URGENT_WORDS
    # issue 14: the one clarification text sent after a possible opt-out ("" = none)
    possible_optout_text: str = ""

    @property
    def region(self) -> str | None:
        """The DID's country (ISO alpha-2), None for numbers outside any plan (+1555 labs)."""
        try:
            return phonenumbers.region_code_for_number(phonenumbers.parse(self.number))
        except phonenumbers.NumberParseException:
            return None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path


@dataclass(frozen=True, slots=True)
class AgiConfig:
    """The FastAGI trigger (for PBXes where AMI is not available); off by default.

    ``token``: the secret every request's ``agi://`` URL must carry (``?token=…``), from
    ``token`` or ``token_file``; required when enabled. ``allow_remote``: a bind address
    off loopback is an error unless set (then a warning): the token is the only lock.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 4573
    paths: tuple[str, ...] = ("missed",)
    token: Secret | None = None
    token_file: Path | None = None
    allow_remote: bool = False


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long personal data is kept (``textback purge`` applies it); 0 = for ever."""

    message_days: float = 0.0  # message bodies (texts in and out, staff e-mails): blanked
    call_days: float = 0.0     # call records (and their consent rows): deleted


@dataclass(frozen=True, slots=True)
class Config:
    source: Path | None
    pbx: PbxConfig
    trunks: TrunksConfig
    modems: tuple[ModemConfig, ...]
    sip: SipConfig | None
    policy: PolicyConfig
    dids: tuple[DidConfig, ...]
    hours: Hours
    store: StoreConfig
    agi: AgiConfig = AgiConfig()
    email: EmailConfig = EmailConfig()
    # usable, but probably not meant (check-config prints them; --strict refuses them)
    warnings: tuple[ConfigIssue, ...] = ()
    retention: RetentionConfig = RetentionConfig()

    def did(self, number: str | None) -> DidConfig | None:
        """The DID's settings, by its E.164 number (national forms are normalised)."""
        if number is None:
            return None
        e164 = to_e164(number, self.trunks.default_region) or number
        for did in self.dids:
            if did.number == e164:
                return did
        return None


# --------------------------------------------------------------------------- the schema


def _one_of(*choices: str) -> Any:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"{value!r} is not one of: {', '.join(choices)}"
        return None
    return check


# FreePBX is Asterisk with a web UI: the same AMI, so the same listener (issue 16)
PBX_ALIASES = {"freepbx": "asterisk"}


def _pbx_type(value: Any) -> str | None:
    if value not in DEFAULT_PORTS and value not in PBX_ALIASES:
        return (f"{value!r} is not one of: {', '.join(DEFAULT_PORTS)} "
                "(FreePBX: \"asterisk\" or its alias \"freepbx\")")
    return None


# the rates a serial port / modem UART actually runs at (termios Bxxx); anything else is a typo
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def _baud(value: Any) -> str | None:
    if value not in BAUD_RATES:
        return (f"{value} is not a serial rate; use one of "
                f"{', '.join(map(str, BAUD_RATES))} (most modems: 115200)")
    return None


def _non_negative(value: Any) -> str | None:
    return "must be 0 or more" if value < 0 else None


def _positive(value: Any) -> str | None:
    return "must be more than 0" if value <= 0 else None


def _port(value: Any) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a TCP port (1-65535)"


def _region(value: Any) -> str | None:
    if value is not None and value not in phonenumbers.SUPPORTED_REGIONS:
        return f"{value!r} is not a region code such as \"US\" or \"GB\""
    return None


def _regions(values: Any) -> str | None:
    bad = [v for v in values if v not in phonenumbers.SUPPORTED_REGIONS]
    return f"not region codes: {', '.join(map(repr, bad))}" if bad else None


_PREFIX = re.compile(r"^\+[0-9]+$")


def _country_caps(values: Any) -> str | None:
    bad = [k for k in values if k != "*" and k not in phonenumbers.SUPPORTED_REGIONS]
    if bad:
        return (f"not region codes: {', '.join(map(repr, bad))} (write e.g. \"US\" = 100, "
                "or \"*\" = 20 for every other country)")
    negative = [k for k, v in values.items() if v < 0]
    if negative:
        return f"caps must be 0 or more: {', '.join(map(repr, negative))}"
    return None


def _kind_caps(values: Any) -> str | None:
    bad = [k for k in values if k not in TEXT_KINDS]
    if bad:
        return (f"not text kinds: {', '.join(map(repr, bad))} (kinds: "
                f"{', '.join(TEXT_KINDS)})")
    negative = [k for k, v in values.items() if v < 0]
    if negative:
        return f"caps must be 0 (no cap) or more: {', '.join(map(repr, negative))}"
    return None


def _prefixes(values: Any) -> str | None:
    bad = [v for v in values if not _PREFIX.match(v)]
    return f"not number prefixes like \"+1555\": {', '.join(map(repr, bad))}" if bad else None


def _e164(value: Any) -> str | None:
    if to_e164(value) != value:
        return f"{value!r} is not a number in E.164 form such as \"+15559870000\""
    return None


def _e164_list(values: Any) -> str | None:
    bad = [v for v in values if to_e164(v) != v]
    return f"not E.164 numbers: {', '.join(map(repr, bad))}" if bad else None


_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _name(value: Any) -> str | None:
    if not _NAME.match(value):
        return f"{value!r}: use lower-case letters, digits, '-' and '_' (e.g. \"a\", \"office\")"
    return None


def _send_timeout(value: Any) -> str | None:
    if not MIN_SEND_TIMEOUT_S <= value <= MAX_SEND_TIMEOUT_S:
        return (f"must be {MIN_SEND_TIMEOUT_S:g} to {MAX_SEND_TIMEOUT_S:g} seconds (how long "
                "the modem may take to answer a sent PDU; the manuals give 60-120 s)")
    return None


def _pin(value: Any) -> str | None:
    return None if re.fullmatch(r"[0-9]{4,8}", value) else "a SIM PIN is 4 to 8 digits"


def _template(value: Any) -> str | None:
    problems = check_template(value)
    return "; ".join(problems) if problems else None


def _emails(values: Any) -> str | None:
    bad = [v for v in values if not re.fullmatch(r"[^@\s]+@[^@\s]+", v)]
    return f"not e-mail addresses: {', '.join(map(repr, bad))}" if bad else None


def _reasons(values: Any) -> str | None:
    bad = [v for v in values if v not in MISSED_REASONS]
    if bad:
        return (f"unknown reasons {', '.join(map(repr, bad))} "
                f"(valid: {', '.join(sorted(MISSED_REASONS))})")
    return None


def _follow_ups(values: Any) -> str | None:
    try:
        parse_rules(values)
    except RuleError as exc:
        return str(exc)
    return None


def _quiet(value: Any) -> str | None:
    try:
        parse_quiet(value)
    except RuleError as exc:
        return str(exc)
    return None


def _words(values: Any) -> str | None:
    return "must not hold an empty word" if any(not v.strip() for v in values) else None


def _day(value: Any) -> str | None:
    try:
        parse_day(value)
    except HoursError as exc:
        return str(exc)
    return None


HOURS = Table({
    "timezone": Field("str", "UTC", check=check_timezone,
                      doc="IANA zone of the business, e.g. America/New_York"),
    **{d: Field("str_or_str_list", DEFAULT_WEEK[d], check=_day) for d in DAYS},
    "always_open": Field("bool", False,
                         doc="open 24 hours, 7 days (then leave out mon..sun)"),
    "holidays": Field("date_list", []),
})

SCHEMA = Table({
    "pbx": Field("table", required=True, table=Table({
        "type": Field("str", required=True, check=_pbx_type,
                      doc='"asterisk" or "freeswitch"; "freepbx" is an alias of asterisk'),
        "host": Field("str", "127.0.0.1"),
        "port": Field("int", None, check=_port),
        "user": Field("str", "textback"),
        "secret": Field("str", None),
        "secret_file": Field("str", None),
        "ping_timeout_s": Field("float", 10.0, check=_positive),
        "ready_timeout_s": Field("float", 30.0, check=_positive),
        "records": Field("str", None,
                         doc="CEL (Asterisk) or CDR (FreeSWITCH) file for recovery"),
    })),
    "trunks": Field("table", table=Table({
        "asterisk_contexts": Field("str_list", list(DEFAULT_TRUNK_CONTEXTS)),
        "asterisk_endpoints": Field("str_list", []),
        "asterisk_message_context": Field("str", "textback-message-in"),
        "freeswitch_profiles": Field("str_list", list(DEFAULT_EXTERNAL_PROFILES)),
        "freeswitch_contexts": Field("str_list", list(DEFAULT_EXTERNAL_CONTEXTS)),
        "settle_s": Field("float", DEFAULT_SETTLE_S, check=_non_negative),
        "default_region": Field("str", None, check=_region),
        "max_call_age_h": Field("float", 4.0, check=_positive),
    })),
    "modem": Field("table_list", table=Table({
        "name": Field("str", required=True, check=_name),
        "port": Field("str", required=True),
        "baud": Field("int", 115200, check=_baud),
        "pin": Field("str", None, check=_pin),
        "pin_file": Field("str", None),
        "smsc": Field("str", None, check=_e164),
        "profile": Field("str", None),
        "send_timeout_s": Field("float", DEFAULT_SEND_TIMEOUT_S, check=_send_timeout),
        "number": Field("str", None, check=_e164),
    })),
    "sip": Field("table", table=Table({
        "destination": Field("str", None),
        "from": Field("str", "sip:{did}@127.0.0.1"),
        "profile": Field("str", None),
    })),
    "policy": Field("table", table=Table({
        "send_delay_s": Field("float", 10.0, check=_non_negative),
        "short_abandon_s": Field("float", 3.0, check=_non_negative),
        "cooldown_h": Field("float", 24.0, check=_non_negative),
        "caller_day_cap": Field("int", 3, check=_positive),
        "prefix_hour_cap": Field("int", 20, check=_positive),
        "prefix_digits": Field("int", 7, check=_positive),
        "global_hour_cap": Field("int", 200, check=_positive),
        "skip_fixed_line": Field("bool", True),
        "allowed_countries": Field("str_list", [], check=_regions),
        "allow": Field("str_list", [], check=_prefixes),
        "deny": Field("str_list", [], check=_prefixes),
        "test_number_prefixes": Field("str_list", [], check=_prefixes),
        "skip_after_failed_deliveries": Field("int", 2, check=_non_negative),
        "resend_unconfirmed": Field("bool", False),
        "max_attempts": Field("int", 5, check=_positive),
        "retry_base_s": Field("float", 30.0, check=_positive),
        "retry_max_s": Field("float", 3600.0, check=_positive),
        "burst_calls": Field("int", 10, check=_non_negative),
        "burst_window_min": Field("float", 10.0, check=_positive),
        "burst_pause_min": Field("float", 60.0, check=_positive),
        "country_hour_caps": Field("int_map", {}, check=_country_caps),
        "handover_after_s": Field("float", 30.0, check=_non_negative),
        "stale_after_min": Field("float", 60.0, check=_non_negative),
        "kind_day_caps": Field("int_map", {}, check=_kind_caps),
    })),
    "did": Field("table_list", required=True, table=Table({
        "number": Field("str", required=True, check=_e164),
        "business": Field("str", required=True),
        "callback": Field("str", None, check=_e164),
        "booking_url": Field("str", ""),
        "text_reasons": Field("str_list", sorted(MISSED_REASONS), check=_reasons),
        "senders": Field("str_list", None),
        "templates": Field("table", table=Table(
            {k: Field("str", None, check=_template) for k in TEMPLATE_KINDS})),
        "staff": Field("table", table=Table({
            "sms": Field("str_list", [], check=_e164_list),
            "email": Field("str_list", [], check=_emails),
            "ring": Field("str", None),
            "dial_context": Field("str", None),
        })),
        "hours": Field("table", None, table=HOURS),
        "follow_ups": Field("str_list", list(DEFAULT_RULES), check=_follow_ups),
        "quiet_hours": Field("str", DEFAULT_QUIET, check=_quiet),
        "follow_up_text": Field("str", DEFAULT_TEXT, check=_template),
        "callback_words": Field("str_list", list(DEFAULT_CALLBACK_WORDS), check=_words),
        "urgent_words": Field("str_list", list(DEFAULT_URGENT_WORDS), check=_words),
        "possible_optout_text": Field("str", "", check=_template),
    })),
    "hours": Field("table", table=HOURS),
    "agi": Field("table", table=Table({
        "enabled": Field("bool", False),
        "host": Field("str", "127.0.0.1"),
        "port": Field("int", 4573, check=_positive),
        "paths": Field("str_list", ["missed"]),
        "token": Field("str", None),
        "token_file": Field("str", None),
        "allow_remote": Field("bool", False),
    })),
    "store": Field("table", table=Table({
        "path": Field("str", str(DEFAULT_STORE)),
    })),
    "retention": Field("table", table=Table({
        "message_days": Field("float", 0.0, check=_non_negative,
                              doc="blank message bodies older than this; 0 keeps them"),
        "call_days": Field("float", 0.0, check=_non_negative,
                           doc="delete call records older than this; 0 keeps them"),
    })),
    "email": Field("table", table=Table({
        "host": Field("str", "127.0.0.1"),
        "port": Field("int", 25, check=_port),
        "from": Field("str", "textback@localhost", check=lambda v: _emails([v])),
        "timeout_s": Field("float", 10.0, check=_positive),
    })),
})


# --------------------------------------------------------------------------- loading


def _read_secret_file(path_text: str, base: Path, key: tuple[str | int, ...],
                      checker: Checker) -> tuple[Path | None, Secret | None]:
    """The secret in ``path_text``; refused unless private to the service user (see
    textback.secret_files for the model: root:<service group> 0640, or the user's 0600)."""
    path = Path(path_text)
    if not path.is_absolute():
        path = base / path
    ident = secret_files.service_identity()
    try:
        problem = secret_files.access_problem(path, path.stat(), ident)
        if problem:
            checker.error(key, problem)
            return path, None
        value = path.read_text(encoding="utf-8").strip()
    except PermissionError as exc:
        checker.error(key, f"cannot read {path}: {exc.strerror}; "
                      f"{secret_files.unreadable_hint(path, ident)}")
        return path, None
    except OSError as exc:
        checker.error(key, f"cannot read {path}: {exc.strerror}")
        return path, None
    if not value:
        checker.error(key, f"{path} is empty")
        return path, None
    return path, Secret(value)


# legacy and abbreviated zone names, and the place an admin most likely means
_ZONE_PLACES = {
    "EST": "America/New_York", "EST5EDT": "America/New_York", "CST6CDT": "America/Chicago",
    "MST": "America/Denver (or America/Phoenix, which keeps MST all year)",
    "MST7MDT": "America/Denver", "PST8PDT": "America/Los_Angeles", "HST": "Pacific/Honolulu",
    "GMT": "Europe/London", "WET": "Europe/Lisbon", "CET": "Europe/Paris",
    "MET": "Europe/Paris", "EET": "Europe/Athens",
}
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Zulu", "Etc/Zulu", "Universal",
                        "Etc/Universal"})


def zone_warning(name: str) -> str | None:
    """Why ``name`` (a zone the machine knows) is probably not what the admin meant: an
    abbreviation or fixed offset ("EST", "Etc/GMT+5") has no daylight-saving rules of a
    place, so opening hours drift by an hour for half the year. None for a place name and
    for an explicit UTC."""
    if name in _UTC_NAMES or ("/" in name and not name.startswith("Etc/")):
        return None
    place = _ZONE_PLACES.get(name, 'the business\'s city, e.g. "America/New_York"')
    if not place.startswith("the"):
        place = f'"{place.split(" ")[0]}"' + place[len(place.split(" ")[0]):]
    zone = ZoneInfo(name)
    offsets = {zone.utcoffset(dt.datetime(2026, month, 1)) for month in (1, 7)}
    what = ("a fixed offset with no daylight saving time" if len(offsets) == 1
            else "a legacy zone name, not a place")
    return (f"{name!r} is {what}: opening hours follow the clock of a place; "
            f"use the IANA name of the business's location: {place}")


ALWAYS = "00:00-24:00"


def _check_always_open(given: Any, path: tuple[str | int, ...], checker: Checker) -> None:
    """``always_open = true`` replaces the seven day keys: both at once is a contradiction
    the admin should hear about rather than have one silently win."""
    if not isinstance(given, Mapping) or given.get("always_open") is not True:
        return
    days = [d for d in DAYS if d in given]
    if days:
        checker.error((*path, "always_open"), f"always_open = true already means open every "
                      f"day, all day: remove {', '.join(days)} (or always_open)")


def _hours(raw: Mapping[str, Any]) -> Hours:
    dated = frozenset(d for d in raw["holidays"] if not isinstance(d, tuple))
    annual = frozenset(d for d in raw["holidays"] if isinstance(d, tuple))
    if raw["always_open"]:
        day = parse_day(ALWAYS)
        tz = raw["timezone"] if check_timezone(raw["timezone"]) is None else "UTC"
        return Hours(tz, tuple(day for _ in DAYS), dated, annual)
    week = []
    for d in DAYS:
        try:
            week.append(parse_day(raw[d]))
        except HoursError:
            week.append(parse_day(DEFAULT_WEEK[d]))
    tz = raw["timezone"] if check_timezone(raw["timezone"]) is None else "UTC"
    return Hours(tz, tuple(week), dated, annual)


def _policy(po: Mapping[str, Any]) -> PolicyConfig:
    return PolicyConfig(
        send_delay_s=po["send_delay_s"], short_abandon_s=po["short_abandon_s"],
        cooldown_s=po["cooldown_h"] * 3600.0, caller_day_cap=po["caller_day_cap"],
        prefix_hour_cap=po["prefix_hour_cap"], prefix_digits=po["prefix_digits"],
        global_hour_cap=po["global_hour_cap"], skip_fixed_line=po["skip_fixed_line"],
        allowed_countries=tuple(po["allowed_countries"]), allow=tuple(po["allow"]),
        deny=tuple(po["deny"]), test_number_prefixes=tuple(po["test_number_prefixes"]),
        skip_after_failed_deliveries=po["skip_after_failed_deliveries"],
        resend_unconfirmed=po["resend_unconfirmed"], max_attempts=po["max_attempts"],
        retry_base_s=po["retry_base_s"], retry_max_s=po["retry_max_s"],
        burst_calls=po["burst_calls"], burst_window_s=po["burst_window_min"] * 60.0,
        burst_pause_s=po["burst_pause_min"] * 60.0,
        country_hour_caps=dict(po["country_hour_caps"]),
        handover_after_s=po["handover_after_s"],
        stale_after_s=po["stale_after_min"] * 60.0,
        kind_day_caps={**DEFAULT_KIND_DAY_CAPS, **po["kind_day_caps"]},
    )


def default_policy() -> PolicyConfig:
    """The [policy] an empty section gives (for code that has no config file at hand)."""
    spec = SCHEMA.fields["policy"].table
    assert spec is not None
    return _policy(Checker(LineIndex("")).check_table({}, spec, ("policy",)))


def parse_config(source: str, path: Path, *, check_permissions: bool = True,
                 file_mode: int | None = None,
                 file_stat: os.stat_result | None = None) -> Config:
    """Validate TOML ``source`` (read from ``path``) and build the typed config.

    Raises ConfigError with every issue. ``file_stat`` (or just ``file_mode``, then owned by
    the current user) is the config file's, for the secret-permission check (looked up from
    ``path`` when None).
    """
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(path, [ConfigIssue("", int(m.group(1)) if m else None,
                                             f"not valid TOML: {exc}")]) from None
    checker = Checker(LineIndex(source))
    v = checker.check_table(data, SCHEMA, ())
    base = path.parent

    # [pbx]
    p = v["pbx"]
    secret = Secret(p["secret"]) if p["secret"] is not None else None
    secret_file: Path | None = None
    if p["secret"] is not None and p["secret_file"] is not None:
        checker.error(("pbx", "secret_file"), "set secret or secret_file, not both")
    elif p["secret_file"] is not None:
        secret_file, secret = _read_secret_file(p["secret_file"], base, ("pbx", "secret_file"),
                                                checker)
    elif p["secret"] is None and "pbx" in data:
        checker.error(("pbx",), "missing: secret_file (recommended) or secret is required "
                      "to log in to the PBX")
    pbx_type = PBX_ALIASES.get(p["type"], p["type"]) or "asterisk"
    pbx = PbxConfig(pbx_type, p["host"], p["port"] or DEFAULT_PORTS[pbx_type], p["user"],
                    secret, secret_file, p["ping_timeout_s"], p["ready_timeout_s"],
                    Path(p["records"]) if p["records"] else None)

    t = v["trunks"]
    trunks = TrunksConfig(tuple(t["asterisk_contexts"]), tuple(t["asterisk_endpoints"]),
                          tuple(t["freeswitch_profiles"]), tuple(t["freeswitch_contexts"]),
                          t["settle_s"], t["default_region"], t["asterisk_message_context"],
                          t["max_call_age_h"])

    # [[modem]]
    modems: list[ModemConfig] = []
    seen: set[str] = set()
    inline_secrets: list[tuple[str | int, ...]] = (
        [("pbx", "secret")] if p["secret"] is not None else [])
    for i, m in enumerate(v["modem"]):
        if m["name"] in seen:
            checker.error(("modem", i, "name"), f"modem name {m['name']!r} is used twice")
        seen.add(m["name"] or "")
        pin = Secret(m["pin"]) if m["pin"] is not None else None
        pin_file: Path | None = None
        if m["pin"] is not None:
            inline_secrets.append(("modem", i, "pin"))
            if m["pin_file"] is not None:
                checker.error(("modem", i, "pin_file"), "set pin or pin_file, not both")
        elif m["pin_file"] is not None:
            pin_file, pin = _read_secret_file(m["pin_file"], base, ("modem", i, "pin_file"),
                                              checker)
        modems.append(ModemConfig(m["name"] or "", m["port"] or "", m["baud"], pin, pin_file,
                                  m["smsc"], m["profile"], m["send_timeout_s"],
                                  m["number"]))

    # [sip]
    sip: SipConfig | None = None
    if "sip" in data:
        s = v["sip"]
        if s["destination"] is None:
            checker.error(("sip", "destination"), "missing: where the PBX sends the MESSAGE, "
                          "e.g. \"pjsip:trunk/sip:{number}@carrier.example\"")
        elif "{number}" not in s["destination"]:
            checker.error(("sip", "destination"), "must contain {number}")
        elif pbx_type == "asterisk" and not s["destination"].lower().startswith("pjsip:"):
            checker.error(("sip", "destination"), "Asterisk needs the technology first, e.g. "
                          "\"pjsip:trunk/sip:{number}@carrier.example\" (without it "
                          "MessageSend answers 'Message technology not found')")
        sip = SipConfig(s["destination"] or "", s["from"], s["profile"])

    policy = _policy(v["policy"])

    _check_always_open(data.get("hours"), ("hours",), checker)
    hours = _hours(v["hours"])

    # [[did]]
    # from the names as written, so one bad modem name is not reported again per DID
    raw_names = [m.get("name") for m in data.get("modem", []) if isinstance(m, dict)]
    known_senders = [f"modem:{n}" for n in raw_names if isinstance(n, str)] + (
        ["sip"] if sip is not None else [])
    dids: list[DidConfig] = []
    numbers: set[str] = set()
    for i, d in enumerate(v["did"]):
        if d["number"] in numbers:
            checker.error(("did", i, "number"), f"DID {d['number']} is configured twice")
        numbers.add(d["number"] or "")
        senders = tuple(d["senders"]) if d["senders"] is not None else tuple(known_senders)
        for s_name in senders:
            if s_name not in known_senders:
                hint = (f"known senders: {', '.join(known_senders)}" if known_senders
                        else "configure a [[modem]] or [sip] first")
                checker.error(("did", i, "senders"), f"unknown sender {s_name!r} ({hint}; "
                              "write \"modem:<name>\" or \"sip\")")
        if not senders:
            checker.error(("did", i, "senders"), "no sender can text for this DID: configure "
                          "a [[modem]] or [sip]")
        if d["business"] is not None and not d["business"].strip():
            checker.error(("did", i, "business"), "must not be empty: texts name the business")
        st = d["staff"]
        staff = StaffConfig(tuple(st["sms"]), tuple(st["email"]), st["ring"] or None,
                            st["dial_context"] or None)
        _check_always_open(data["did"][i].get("hours"), ("did", i, "hours"), checker)
        did_hours = _hours(d["hours"]) if "hours" in data["did"][i] else hours
        dids.append(DidConfig(
            number=d["number"] or "", business=(d["business"] or "").strip(),
            callback=d["callback"] or d["number"] or "", booking_url=d["booking_url"],
            text_reasons=frozenset(d["text_reasons"]), senders=senders,
            templates=dict(d["templates"]), staff=staff, hours=did_hours,
            follow_ups=_or_default(parse_rules, d["follow_ups"], DEFAULT_RULES),
            quiet_hours=_or_default(parse_quiet, d["quiet_hours"], DEFAULT_QUIET),
            follow_up_text=d["follow_up_text"],
            callback_words=tuple(w.strip() for w in d["callback_words"]),
            urgent_words=tuple(d["urgent_words"]),
            possible_optout_text=d["possible_optout_text"].strip(),
        ))
    if "did" in data and not v["did"]:
        checker.error(("did",), "at least one [[did]] is required")

    # [agi]: only the PBX may report calls (the token), and only from this machine unless
    # the admin says otherwise
    a = v["agi"]
    agi_token = Secret(a["token"]) if a["token"] is not None else None
    agi_token_file: Path | None = None
    if a["token"] is not None:
        inline_secrets.append(("agi", "token"))
        if a["token_file"] is not None:
            checker.error(("agi", "token_file"), "set token or token_file, not both")
    elif a["token_file"] is not None:
        agi_token_file, agi_token = _read_secret_file(a["token_file"], base,
                                                      ("agi", "token_file"), checker)
    if a["enabled"]:
        if a["token"] is None and a["token_file"] is None:
            checker.error(("agi", "enabled"), "the FastAGI trigger needs a token: set "
                          "token_file (recommended) or token, and put the same token in the "
                          "dialplan's agi:// URL (?token=...); without it any local user "
                          "could report calls (docs/asterisk.md)")
        elif agi_token is not None and len(agi_token.reveal()) < MIN_TOKEN_LENGTH:
            checker.error(("agi", "token_file" if a["token"] is None else "token"),
                          f"the token is shorter than {MIN_TOKEN_LENGTH} characters: too easy "
                          "to guess (e.g. openssl rand -hex 16)")
        if not is_loopback_host(a["host"]):
            if not a["allow_remote"]:
                checker.error(("agi", "host"), f"{a['host']!r} is not a loopback address: "
                              "other machines could reach the FastAGI port; use 127.0.0.1, "
                              "or set allow_remote = true if the PBX runs elsewhere")
            else:
                checker.warn(("agi", "host"), f"{a['host']!r} listens beyond this machine "
                             "(allow_remote = true): the token is the only protection; "
                             "firewall the port to the PBX's address")

    # A file holding secrets must be private (the same model as a secret_file).
    if check_permissions and inline_secrets:
        st = file_stat
        if st is None and file_mode is not None:
            st = os.stat_result((file_mode, 0, 0, 0, os.geteuid(), os.getegid(), 0, 0, 0, 0))
        if st is None:
            try:
                st = path.stat()
            except OSError:
                st = None
        problem = secret_files.access_problem(path, st, secret_files.service_identity())
        if problem:
            names = ", ".join(dotted(k) for k in inline_secrets)
            checker.error(inline_secrets[0], f"this file holds a secret ({names}): {problem} "
                          "(or move the secret to a secret_file / pin_file)")

    store_path = Path(v["store"]["path"])
    if not store_path.is_absolute():
        store_path = base / store_path

    _warn_gaps(data, v, checker)

    if checker.issues:
        checker.issues.sort(key=lambda i: (i.line or 0, i.key))
        raise ConfigError(path, checker.issues)
    agi = AgiConfig(a["enabled"], a["host"], a["port"], tuple(a["paths"]), agi_token,
                    agi_token_file, a["allow_remote"])
    e = v["email"]
    email = EmailConfig(e["host"], e["port"], e["from"], e["timeout_s"])
    checker.warnings.sort(key=lambda i: (i.line or 0, i.key))
    r = v["retention"]
    return Config(path, pbx, trunks, tuple(modems), sip, policy, tuple(dids), hours,
                  StoreConfig(store_path), agi, email, warnings=tuple(checker.warnings),
                  retention=RetentionConfig(r["message_days"], r["call_days"]))


def _warn_gaps(data: Mapping[str, Any], v: Mapping[str, Any], checker: Checker) -> None:
    """Settings that are valid but that an admin most likely did not mean (issue 16)."""
    raw_dids = [d for d in data.get("did", []) if isinstance(d, dict)]
    top = data.get("hours")
    if not isinstance(top, dict) or "timezone" not in top:
        falling_back = [f"did[{i + 1}]" for i, d in enumerate(raw_dids) if "hours" not in d]
        if falling_back:
            where: tuple[str | int, ...] = (
                ("hours",) if not isinstance(top, dict) else ("hours", "timezone"))
            what = "no [hours]" if not isinstance(top, dict) else "[hours] has no timezone"
            checker.warn(where, f"{what}: {', '.join(falling_back)} use Mon-Fri "
                         "09:00-17:00 in UTC, which is probably not the business's clock; "
                         "fix: add [hours] with timezone = \"America/New_York\" (your "
                         "IANA zone) and the opening hours")
    for i, d in enumerate(raw_dids):
        own = d.get("hours")
        if isinstance(own, dict) and "timezone" not in own:
            checker.warn(("did", i, "hours", "timezone"), "not set: this DID's hours are in "
                         "UTC; fix: timezone = \"America/New_York\" (your IANA zone)")
    tables: list[tuple[tuple[str | int, ...], Any]] = [(("hours",), top)] + [
        (("did", i, "hours"), d.get("hours")) for i, d in enumerate(raw_dids)]
    for where, table in tables:
        if not isinstance(table, dict) or not isinstance(table.get("timezone"), str):
            continue
        if check_timezone(table["timezone"]) is None:
            problem = zone_warning(table["timezone"])
            if problem:
                checker.warn((*where, "timezone"), problem)
    prefixes = v["policy"]["test_number_prefixes"]
    if prefixes:
        checker.warn(("policy", "test_number_prefixes"),
                     f"lab-only setting: numbers starting with {', '.join(prefixes)} skip "
                     "the number-plan checks (premium-rate, invalid, fixed-line) and get "
                     "texted; fix: remove test_number_prefixes on a production PBX")


def _or_default(parse: Any, value: Any, default: Any) -> Any:
    """``parse(value)``; the default's parse when the value was already reported bad."""
    try:
        return parse(value)
    except RuleError:
        return parse(default)


def load_config(path: Path | str | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file (default /etc/textback/textback.toml, or the
    TEXTBACK_CONFIG environment variable). Raises ConfigError, with one issue for a file
    that cannot be read."""
    env = os.environ if environ is None else environ
    chosen = Path(path) if path is not None else Path(env.get("TEXTBACK_CONFIG", DEFAULT_PATH))
    try:
        raw = chosen.read_bytes()
        st = chosen.stat()
    except FileNotFoundError:
        raise ConfigError(chosen, [ConfigIssue("", None, "no such file; write one (see "
                                               "docs/config.md) or pass --config PATH")]) from None
    except PermissionError as exc:
        hint = secret_files.unreadable_hint(chosen, secret_files.service_identity())
        raise ConfigError(chosen, [ConfigIssue("", None, f"cannot read: {exc.strerror}; "
                                               f"{hint}")]) from None
    except OSError as exc:
        raise ConfigError(chosen, [ConfigIssue("", None, f"cannot read: {exc.strerror}")]) \
            from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(chosen, [ConfigIssue("", line, "not UTF-8 text")]) from None
    return parse_config(source, chosen, file_stat=st)
