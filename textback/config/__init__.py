"""``textback.toml``: load, validate, and hand the daemon typed, frozen settings.

Validation follows Home Assistant's rule that a config error must say where to look: every
problem names the dotted key and its line, unknown keys get the nearest valid name, and all
problems are reported at once (``ConfigError.issues``). A file that holds a secret (the PBX
secret, a SIM PIN, any ``secret_file`` / ``pin_file``, a webhook's too) must be private to
the service user (root:<its group> 0640, or its own 0600: textback.secret_files); otherwise
it is refused naming the user and group and the chown/chmod that fixes it. Secrets are
wrapped in :class:`Secret`, whose repr never shows the value, so logging a config object
cannot leak one.

Each section is declared once, as a dataclass of ``setting`` fields (textback.schema), and
beside the code that uses it where that code is a package of its own: ``[policy]`` in
textback/outbound/settings.py, ``[pbx]`` and ``[trunks]`` in textback/pbx/settings.py,
``[[modem]]`` in textback/modem/settings.py, ``[email]`` in textback/inbound/settings.py,
``[agi]`` in textback/pbx/asterisk/agi_settings.py; the sections every part reads
(``[[did]]`` and its staff, ``[sip]``, ``[store]``, ``[retention]``, ``[log]``, ``[web]``,
``[[webhook]]``) here. This module assembles them: it derives the schema from the
declarations, builds each section, and checks what spans sections (a DID's senders, a
secret's file, the warnings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from textback import secret_files
from textback.errors import TextbackError
from textback.inbound.keywords import DEFAULT_URGENT_WORDS
from textback.inbound.settings import EmailConfig, emails
from textback.modem.settings import ModemConfig, e164
from textback.numbers import number_plan, to_e164
from textback.outbound.followup_rules import (
    DEFAULT_QUIET,
    DEFAULT_RULES,
    DEFAULT_TEXT,
    FollowUpRule,
    Quiet,
    RuleError,
    parse_quiet,
    parse_rules,
)
from textback.outbound.hours import DAYS, DEFAULT_WEEK, Hours, HoursError, check_timezone, parse_day
from textback.outbound.settings import PolicyConfig
from textback.outbound.templates import TEMPLATE_KINDS, check_template
from textback.pbx.asterisk.agi_access import MIN_TOKEN_LENGTH, is_loopback_host
from textback.pbx.asterisk.agi_settings import AgiConfig
from textback.pbx.outcome import MISSED_REASONS
from textback.pbx.settings import DEFAULT_PORTS, PbxConfig, TrunksConfig, pbx_kind
from textback.schema import (
    Checker,
    ConfigIssue,
    Field,
    LineIndex,
    Secret,
    Table,
    build_section,
    dotted,
    non_negative,
    one_of,
    positive,
    section_table,
    setting,
)

DEFAULT_PATH = Path("/etc/textback/textback.toml")
DEFAULT_STORE = Path("/var/lib/textback/textback.db")
# [[modem]] send_timeout_s: AT+CMGS "max response time" is 60 s in the SIM800 Series AT
# Command Manual V1.09 (4.2.5) and "120s, determined by network" in Quectel's AT command
# manuals (WCDMA UGxx 9.8, the same family as the EC25's); the longer one by default.
# Under 5 s would declare texts unconfirmed that the network is still taking (2-3 s a part).
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


# --------------------------------------------------------------------------- typed result


@dataclass(frozen=True, slots=True)
class SipConfig:
    """Texts through the PBX's own trunk. ``destination`` / ``from_uri`` hold {number} / {did}."""

    destination: str = setting("str", None)  # required when [sip] is there (checked below)
    from_uri: str = setting("str", "sip:{did}@127.0.0.1", key="from")
    profile: str | None = setting("str", None)  # FreeSWITCH sofia profile for chat



def url_key(url: str) -> str:
    """A stable name for a URL that may hold a token (a webhook, an Apprise URL): what the
    store keeps and the logs show instead of the URL itself."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def url_scheme(url: str) -> str:
    """``ntfy://token@host/topic`` → ``ntfy``: the one part of a notify URL safe to log."""
    return url.partition("://")[0].lower() if "://" in url else "?"


@dataclass(frozen=True, slots=True)
class StaffConfig:
    """``[did.staff]``: who is told about replies, and how a callback rings them."""

    sms: tuple[str, ...] = setting("str_list", [], check=lambda v: _e164_list(v))
    email: tuple[str, ...] = setting("str_list", [], check=emails)
    # callback on reply: what the PBX rings first (Asterisk channel such as
    # "Local/600@from-internal", FreeSWITCH dial string such as "group/sales@example.com")
    # and the dialplan context the customer's number is then dialled in; None: no callback
    ring: str | None = setting("str", None, convert=lambda v: v or None)
    dial_context: str | None = setting("str", None, convert=lambda v: v or None)
    # Apprise URLs (ntfy://, tgram://, mailto://, json:// ...): staff told on those channels
    # too (textback.inbound.staff_mail); Secret, because the URLs hold tokens
    notify: tuple[Secret, ...] = setting("str_list", [], check=lambda v: _notify_urls(v),
                                         convert=lambda urls: tuple(Secret(u) for u in urls))


# the events a [[webhook]] may ask for (textback.webhooks; docs/webhooks.md)
WEBHOOK_EVENTS = ("call.missed", "text.sent", "text.delivered", "text.failed",
                  "reply.received", "optout", "optin", "conversation.outcome")
MIN_WEBHOOK_SECRET = 16


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One ``[[webhook]]``: where events are POSTed and the secret that signs them."""

    # may hold a token in its path or query: never logged (``key`` / ``host``)
    url: Secret = setting("str", required=True, check=lambda v: _webhook_url(v),
                          convert=Secret)
    events: frozenset[str] = setting("str_list", list(WEBHOOK_EVENTS),
                                     check=lambda v: _webhook_events(v), convert=frozenset)
    secret: Secret = setting("str", None, convert=Secret)  # or read from secret_file
    secret_file: Path | None = setting("str", None, convert=Path)
    timeout_s: float = setting("float", 10.0, check=positive)
    give_up_after_s: float = setting("float", 24.0, key="give_up_after_h", check=positive,
                                     convert=lambda h: h * 3600.0)

    @property
    def key(self) -> str:
        """Its name in the store and the logs (a digest of the URL)."""
        return url_key(self.url.reveal())

    @property
    def host(self) -> str:
        """The URL's host and port only, for log lines."""
        return urllib.parse.urlsplit(self.url.reveal()).netloc.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``[store]``: the SQLite file (relative to the config file's folder if relative)."""

    path: Path = setting("str", str(DEFAULT_STORE), convert=Path)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long personal data is kept (``textback purge`` applies it); 0 = for ever."""

    # message bodies (texts in and out, staff e-mails): blanked
    message_days: float = setting("float", 0.0, check=non_negative,
                                  doc="blank message bodies older than this; 0 keeps them")
    # call records (and their consent rows): deleted
    call_days: float = setting("float", 0.0, check=non_negative,
                               doc="delete call records older than this; 0 keeps them")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log] level``: the log threshold, so a reload (SIGHUP) can change it; None leaves it
    to ``textback run --log-level`` (INFO by default). The flag, when given, wins."""

    level: str | None = setting(
        "str", None, check=lambda v: one_of(*LOG_LEVELS)(str(v).upper()),
        convert=lambda v: str(v).upper(),
        doc="DEBUG, INFO, WARNING or ERROR; a reload (SIGHUP) applies it")


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The office's web app (textback/web/); off by default.

    ``listen`` is ``host:port`` (``[::1]:8025`` for IPv6). Only loopback unless
    ``allow_remote``, and then only with HTTPS here (``tls_cert`` + ``tls_key``) or behind a
    reverse proxy that terminates TLS (``behind_proxy``): the session cookie and the
    passwords must never cross a network in clear (docs/web.md).
    """

    enabled: bool = setting("bool", False)
    listen: str = setting("str", "127.0.0.1:8025", check=lambda v: _listen(v))
    allow_remote: bool = setting("bool", False)
    tls_cert: Path | None = setting("str", None, convert=Path)  # relative: config's folder
    tls_key: Path | None = setting("str", None, convert=Path)
    behind_proxy: bool = setting("bool", False)
    session_hours: float = setting("float", 12.0, check=positive)
    host: str = "127.0.0.1"  # from listen
    port: int = 8025

    @property
    def https(self) -> bool:
        return self.tls_cert is not None


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError says what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: write host:port, e.g. \"127.0.0.1:8025\"")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{text!r}: the port {port!r} is not a number") from None
    if not 0 <= number < 65536:
        raise ValueError(f"{text!r}: the port must be 1-65535 (0: any free port, for tests)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, number


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
    agi: AgiConfig = field(default_factory=AgiConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    web: WebConfig = WebConfig()
    # usable, but probably not meant (check-config prints them; --strict refuses them)
    warnings: tuple[ConfigIssue, ...] = ()
    retention: RetentionConfig = RetentionConfig()
    log: LogConfig = LogConfig()

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



def _non_negative(value: Any) -> str | None:
    return "must be 0 or more" if value < 0 else None


def _positive(value: Any) -> str | None:
    return "must be more than 0" if value <= 0 else None


def _port(value: Any) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a TCP port (1-65535)"


def _e164_list(values: Any) -> str | None:
    bad = [v for v in values if to_e164(v) != v]
    return f"not E.164 numbers: {', '.join(map(repr, bad))}" if bad else None




def _listen(value: Any) -> str | None:
    try:
        parse_listen(str(value))
    except ValueError as exc:
        return str(exc)
    return None


def _template(value: Any) -> str | None:
    problems = check_template(value)
    return "; ".join(problems) if problems else None




def _notify_urls(values: Any) -> str | None:
    """Apprise URLs: ``scheme://...``. The message names the position and the scheme
    only: the rest of the URL is usually a token."""
    bad = [f"notify[{i + 1}]" for i, v in enumerate(values)
           if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$", v)]
    if bad:
        return (f"{', '.join(bad)}: not an Apprise URL such as \"ntfy://ntfy.example/topic\" "
                "or \"tgram://bottoken/chatid\" (https://github.com/caronc/apprise/wiki)")
    return None


def _webhook_url(value: Any) -> str | None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host (the value is not shown)"
    return None


def _webhook_events(values: Any) -> str | None:
    bad = [v for v in values if v not in WEBHOOK_EVENTS]
    if bad:
        return (f"unknown events {', '.join(map(repr, bad))} "
                f"(events: {', '.join(WEBHOOK_EVENTS)})")
    return None if values else "must name at least one event (leave it out for all)"


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

def _or_default(parse: Any, value: Any, default: Any) -> Any:
    """``parse(value)``; the default's parse when the value was already reported bad."""
    try:
        return parse(value)
    except RuleError:
        return parse(default)


@dataclass(frozen=True, slots=True)
class DidConfig:
    """One ``[[did]]``: a business number, its texts, hours, staff and follow-ups. ``senders``
    (default: every sender configured), ``callback`` (default: the DID), ``staff`` and
    ``hours`` (default: the top-level [hours]) are completed by the loader."""

    number: str = setting("str", required=True, check=lambda v: e164(v))
    business: str = setting("str", required=True, convert=str.strip)
    callback: str = setting("str", None, check=lambda v: e164(v))
    booking_url: str = setting("str", "")
    text_reasons: frozenset[str] = setting("str_list", sorted(MISSED_REASONS),
                                           check=lambda v: _reasons(v), convert=frozenset)
    senders: tuple[str, ...] = setting("str_list", None)
    templates: Mapping[str, str | None] = setting(
        "table", {}, convert=dict,
        table=Table({k: Field("str", None, check=_template) for k in TEMPLATE_KINDS}))
    staff: StaffConfig = setting("table", None, table=section_table(StaffConfig))
    hours: Hours = setting("table", None, table=HOURS)
    follow_ups: tuple[FollowUpRule, ...] = setting(
        "str_list", list(DEFAULT_RULES), check=lambda v: _follow_ups(v),
        convert=lambda v: _or_default(parse_rules, v, DEFAULT_RULES))
    quiet_hours: Quiet | None = setting(
        "str", DEFAULT_QUIET, check=lambda v: _quiet(v),
        convert=lambda v: _or_default(parse_quiet, v, DEFAULT_QUIET))
    follow_up_text: str = setting("str", DEFAULT_TEXT, check=lambda v: _template(v))
    callback_words: tuple[str, ...] = setting(
        "str_list", list(DEFAULT_CALLBACK_WORDS), check=lambda v: _words(v),
        convert=lambda ws: tuple(w.strip() for w in ws))
    urgent_words: tuple[str, ...] = setting("str_list", list(DEFAULT_URGENT_WORDS),
                                            check=lambda v: _words(v))
    # issue 14: the one clarification text sent after a possible opt-out ("" = none)
    possible_optout_text: str = setting("str", "", check=lambda v: _template(v),
                                        convert=str.strip)

    @property
    def region(self) -> str | None:
        """The DID's country (ISO alpha-2), None for numbers outside any plan (+1555 labs)."""
        return number_plan(self.number).region


SCHEMA = Table({
    "pbx": Field("table", required=True, table=section_table(PbxConfig)),
    "trunks": Field("table", table=section_table(TrunksConfig)),
    "modem": Field("table_list", table=section_table(ModemConfig)),
    "sip": Field("table", table=section_table(SipConfig)),
    "policy": Field("table", table=section_table(PolicyConfig)),
    "did": Field("table_list", required=True, table=section_table(DidConfig)),
    "hours": Field("table", table=HOURS),
    "agi": Field("table", table=section_table(AgiConfig)),
    "store": Field("table", table=section_table(StoreConfig)),
    "retention": Field("table", table=section_table(RetentionConfig)),
    "webhook": Field("table_list", table=section_table(WebhookConfig)),
    "log": Field("table", table=section_table(LogConfig)),
    "web": Field("table", table=section_table(WebConfig)),
    "email": Field("table", table=section_table(EmailConfig)),
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
    return build_section(PolicyConfig, po)


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
    pbx_type = pbx_kind(p["type"])
    pbx = build_section(PbxConfig, p, port=p["port"] or DEFAULT_PORTS[pbx_type],
                        secret=secret, secret_file=secret_file)
    trunks = build_section(TrunksConfig, v["trunks"])

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
        modems.append(build_section(ModemConfig, {**m, "name": m["name"] or "",
                                                  "port": m["port"] or ""},
                                    pin=pin, pin_file=pin_file))

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
        sip = build_section(SipConfig, s, destination=s["destination"] or "")

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
        staff = build_section(StaffConfig, st)
        if st["notify"]:
            inline_secrets.append(("did", i, "staff", "notify"))
        _check_always_open(data["did"][i].get("hours"), ("did", i, "hours"), checker)
        did_hours = _hours(d["hours"]) if "hours" in data["did"][i] else hours
        dids.append(build_section(
            DidConfig, d, number=d["number"] or "", business=(d["business"] or "").strip(),
            callback=d["callback"] or d["number"] or "", senders=senders, staff=staff,
            hours=did_hours))
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

    webhooks = _webhooks(v["webhook"], base, checker, inline_secrets)

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
    web = _web(v["web"], base, checker)

    _warn_gaps(data, v, checker)

    if checker.issues:
        checker.issues.sort(key=lambda i: (i.line or 0, i.key))
        raise ConfigError(path, checker.issues)
    agi = build_section(AgiConfig, a, token=agi_token, token_file=agi_token_file)
    email = build_section(EmailConfig, v["email"])
    checker.warnings.sort(key=lambda i: (i.line or 0, i.key))
    return Config(path, pbx, trunks, tuple(modems), sip, policy, tuple(dids), hours,
                  build_section(StoreConfig, v["store"], path=store_path), agi, email,
                  webhooks, web=web, warnings=tuple(checker.warnings),
                  retention=build_section(RetentionConfig, v["retention"]),
                  log=build_section(LogConfig, v["log"]))


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


def _webhooks(checked: list[Mapping[str, Any]], base: Path, checker: Checker,
              inline_secrets: list[tuple[str | int, ...]]) -> tuple[WebhookConfig, ...]:
    """``[[webhook]]``: each signed with its own secret (``secret_file`` recommended, as for
    the PBX secret); a plain-http URL off this machine is allowed with a warning."""
    hooks: list[WebhookConfig] = []
    seen: set[str] = set()
    for i, h in enumerate(checked):
        url = h["url"] or ""
        secret: Secret | None = Secret(h["secret"]) if h["secret"] is not None else None
        secret_file: Path | None = None
        if h["secret"] is not None:
            inline_secrets.append(("webhook", i, "secret"))
            if h["secret_file"] is not None:
                checker.error(("webhook", i, "secret_file"), "set secret or secret_file, "
                              "not both")
        elif h["secret_file"] is not None:
            secret_file, secret = _read_secret_file(h["secret_file"], base,
                                                    ("webhook", i, "secret_file"), checker)
        else:
            checker.error(("webhook", i), "missing: secret_file (recommended) or secret: "
                          "every delivery is signed with it (e.g. openssl rand -hex 32)")
        if secret is not None and len(secret.reveal()) < MIN_WEBHOOK_SECRET:
            checker.error(("webhook", i, "secret_file" if h["secret"] is None else "secret"),
                          f"the secret is shorter than {MIN_WEBHOOK_SECRET} characters: too "
                          "easy to guess (e.g. openssl rand -hex 32)")
        if url in seen:
            checker.error(("webhook", i, "url"), "the same URL is configured twice")
        seen.add(url)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and parts.hostname and not is_loopback_host(parts.hostname):
            checker.warn(("webhook", i, "url"), "plain http beyond this machine: the events "
                         "(customers' numbers and texts) travel unencrypted; use https")
        if re.search(r"//[^/@]*@", url):  # user:password@ in the URL is a secret too
            inline_secrets.append(("webhook", i, "url"))
        hooks.append(build_section(WebhookConfig, h, url=Secret(url),
                                   secret=secret or Secret(""), secret_file=secret_file))
    return tuple(hooks)


def _web(w: Mapping[str, Any], base: Path, checker: Checker) -> WebConfig:
    """[web]: loopback unless allow_remote, and off loopback only over TLS (here or at a
    reverse proxy): a session cookie or a password must not cross a network in clear."""
    try:
        host, port = parse_listen(w["listen"])
    except ValueError:  # already reported by the field's check
        host, port = "127.0.0.1", 8025
    cert = base / w["tls_cert"] if w["tls_cert"] else None
    key = base / w["tls_key"] if w["tls_key"] else None
    if (cert is None) != (key is None):
        checker.error(("web", "tls_key" if key is None else "tls_cert"),
                      "set tls_cert and tls_key together (the certificate chain and its key)")
    if w["enabled"] and not is_loopback_host(host):
        if not w["allow_remote"]:
            checker.error(("web", "listen"), f"{host!r} is not a loopback address: other "
                          "machines could reach the web app; use 127.0.0.1, or set "
                          "allow_remote = true with TLS (tls_cert/tls_key) or behind_proxy")
        elif cert is None and not w["behind_proxy"]:
            checker.error(("web", "allow_remote"), "a web app reachable from other machines "
                          "needs TLS: set tls_cert and tls_key, or put it behind a reverse "
                          "proxy that terminates HTTPS and set behind_proxy = true "
                          "(docs/web.md)")
    return build_section(WebConfig, w, host=host, port=port, tls_cert=cert, tls_key=key)


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
