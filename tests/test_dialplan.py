"""dialplan/ snippets: syntax, and every context/variable they rely on exists in the shared
lab setup (../shared/traces/asterisk-22/setup, ../shared/traces/freeswitch-1.10/setup).

A small Asterisk .conf parser lives here (sections, ``key => value`` / ``key = value``,
``;`` comments with ``\\;`` escapes, ``same =>`` continuation, templates ``[name](tpl)``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import ASTERISK_TRACES, FREESWITCH_TRACES

from textback.pbx.asterisk.agi_access import token_matches
from textback.pbx.asterisk.agi_server import DEFAULT_PATHS, DEFAULT_PORT
from textback.pbx.asterisk.agi_session import AgiRequest
from textback.pbx.asterisk.agi_verdict import build_outcome

REPO = Path(__file__).resolve().parents[1]
DIALPLAN = REPO / "dialplan"
AST_SETUP = ASTERISK_TRACES / "setup" / "asterisk-conf"
FS_SETUP = FREESWITCH_TRACES / "setup" / "freeswitch-conf"


@dataclass
class Section:
    name: str
    lineno: int
    entries: list[tuple[str, str, int]] = field(default_factory=list)

    def values(self, key: str) -> list[str]:
        return [v for k, v, _ in self.entries if k == key]


def parse_conf(path: Path) -> list[Section]:
    """Asterisk config syntax; raises AssertionError naming file:line on anything else."""
    sections: list[Section] = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if not line:
            continue
        if line.startswith("#include") or line.startswith("#exec"):
            continue
        m = re.fullmatch(r"\[([A-Za-z0-9_.+-]+)\](?:\(([^)]*)\))?", line)
        if m:
            sections.append(Section(m.group(1), n))
            continue
        m = re.fullmatch(r"([A-Za-z0-9_().-]+)\s*(=>|=)\s*(.*)", line)
        assert m, f"{path.name}:{n}: not a config line: {raw!r}"
        assert sections, f"{path.name}:{n}: setting outside any [section]"
        sections[-1].entries.append((m.group(1), m.group(3), n))
    return sections


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0 and text.count("${") <= text.count("}")


KNOWN_APPS = {"NoOp", "Set", "Goto", "GotoIf", "AGI", "Return", "Hangup", "UserEvent",
              "Gosub", "ExecIf"}


def dialplan_steps(sections: list[Section]) -> dict[str, list[tuple[str, str, str, int]]]:
    """context → [(exten, priority, application call, line)], checking the exten syntax."""
    out: dict[str, list[tuple[str, str, str, int]]] = {}
    for sec in sections:
        steps = out.setdefault(sec.name, [])
        current: str | None = None
        for key, value, n in sec.entries:
            if key == "include":
                continue
            assert key in ("exten", "same"), f"line {n}: {key!r} in a dialplan context"
            parts = value.split(",", 2) if key == "exten" else ["", *value.split(",", 1)]
            assert len(parts) == 3, f"line {n}: need exten,priority,App(...)"
            exten, prio, app = parts
            if key == "exten":
                current = exten.strip()
                assert current, f"line {n}: empty extension"
                if current.startswith("_"):
                    assert re.fullmatch(r"_(?:[XZN.!+0-9a-zA-Z*#]|\[[^\]]+\])+", current), n
                assert prio.strip() == "1", f"line {n}: an extension starts at priority 1"
            else:
                assert current is not None, f"line {n}: same => before any exten =>"
                assert prio.strip() == "n", f"line {n}: same => uses priority n"
            m = re.fullmatch(r"([A-Za-z]+)\((.*)\)", app.strip())
            assert m, f"line {n}: application call must be App(args): {app!r}"
            assert m.group(1) in KNOWN_APPS, f"line {n}: unexpected application {m.group(1)}"
            assert _balanced(m.group(2)), f"line {n}: unbalanced parentheses or ${{…}}"
            steps.append((current, prio.strip(), app.strip(), n))
    return out


def _goto_targets(steps: dict[str, list[tuple[str, str, str, int]]]) -> set[str]:
    targets: set[str] = set()
    for rows in steps.values():
        for _, _, app, _ in rows:
            for m in re.finditer(r"(?:Goto\(|\?|hangup_handler_push\)=)([A-Za-z][\w-]*),", app):
                targets.add(m.group(1))
    return targets


SETUP_EXTENSIONS = parse_conf(AST_SETUP / "extensions.conf")
SETUP_CONTEXTS = {s.name for s in SETUP_EXTENSIONS}


# -- plain Asterisk ------------------------------------------------------------------------

def test_asterisk_snippet_syntax_and_targets() -> None:
    sections = parse_conf(DIALPLAN / "asterisk" / "extensions_textback.conf")
    steps = dialplan_steps(sections)
    assert {"textback-from-trunk", "textback-hangup", "textback-message-in"} <= set(steps)
    # every Goto / hangup handler target exists: ours, or the lab's inbound context
    for target in _goto_targets(steps):
        assert target in steps or target in SETUP_CONTEXTS, f"no context {target}"
    assert "from-trunk" in _goto_targets(steps) and "from-trunk" in SETUP_CONTEXTS


def test_asterisk_endpoint_settings_we_tell_admins_to_change_exist() -> None:
    pjsip = {s.name + "/" + (s.values("type") or ["?"])[0]: s
             for s in parse_conf(AST_SETUP / "pjsip.conf")}
    trunk = pjsip["trunk/endpoint"]
    assert trunk.values("context") == ["from-trunk"]
    assert trunk.values("message_context") == ["from-trunk-sms"]
    assert "from-trunk-sms" in SETUP_CONTEXTS


def test_result_variables_come_from_applications_the_lab_dialplan_uses() -> None:
    apps = {m.group(1) for s in SETUP_EXTENSIONS for _, v, _ in s.entries
            for m in re.finditer(r"\b(Dial|Queue|VoiceMail)\(", v)}
    assert apps == {"Dial", "Queue", "VoiceMail"}   # → DIALSTATUS, QUEUESTATUS, VMSTATUS
    text = (AST_SETUP / "extensions.conf").read_text()
    assert "${DIALSTATUS}" in text                   # the lab's own AGI line reads it


def _agi_calls(path: Path) -> list[str]:
    steps = dialplan_steps(parse_conf(path))
    return [app for rows in steps.values() for _, _, app, _ in rows if app.startswith("AGI(")]


@pytest.mark.parametrize("path", [DIALPLAN / "asterisk" / "extensions_textback.conf",
                                  DIALPLAN / "freepbx" / "extensions_custom.conf"],
                         ids=["asterisk", "freepbx"])
@pytest.mark.parametrize(("capture", "dialstatus", "reason"), [
    ("direct-busy", "BUSY", "busy"),
    ("direct-noanswer", "NOANSWER", "noanswer"),
    ("ringgroup-noanswer", "NOANSWER", "noanswer"),
])
def test_agi_line_yields_the_capture_verdict(path: Path, capture: str, dialstatus: str,
                                             reason: str) -> None:
    """Expand the snippet's AGI() as Asterisk would for the captured call, feed the result to
    the real outcome builder: the URL, its keys and the arguments match what the server reads."""
    [agi] = _agi_calls(path)
    env = dict(line.split(": ", 1) for line in
               (ASTERISK_TRACES / f"{capture}.fastagi").read_text().splitlines()
               if ": " in line)
    token = "tok+en/with=odd&chars-0123"  # URIENCODE keeps any token intact in the query
    variables = {"DIALSTATUS": dialstatus, "ARG1": env["agi_dnid"], "QUEUESTATUS": "",
                 "VMSTATUS": "", "DIALEDTIME": "8", "CALLERID(num)": env["agi_callerid"],
                 "TEXTBACK_AGI_TOKEN": token}
    # the token, from the global variable, comes first in the URL (docs/asterisk.md)
    assert "missed?token=${URIENCODE(${TEXTBACK_AGI_TOKEN})}&" in agi

    def expand(text: str) -> str:
        while m := re.search(r"\$\{URIENCODE\(\$\{([^{}]+)\}\)\}", text):
            text = text[:m.start()] + quote(variables[m.group(1)], safe="") + text[m.end():]
        return re.sub(r"\$\{([^{}]+)\}", lambda m: variables[m.group(1)], text)

    args = expand(agi[len("AGI("):-1]).split(",")
    url, agi_args = args[0], args[1:]
    m = re.fullmatch(r"agi://127\.0\.0\.1:(\d+)/([^?]+)\?(.*)", url)
    assert m and int(m.group(1)) == DEFAULT_PORT and m.group(2) in DEFAULT_PATHS
    env["agi_network_script"] = f"{m.group(2)}?{m.group(3)}"
    for i in range(1, 4):
        env.pop(f"agi_arg_{i}", None)
    env.update({f"agi_arg_{i}": a for i, a in enumerate(agi_args, 1)})
    request = AgiRequest(env=env)
    assert token_matches(request, token) and not token_matches(request, token[:-1])
    out = build_outcome(request, {}, ended_at=None)
    assert (out.verdict, out.reason, out.caller, out.did, out.ring_s) == (
        "missed", reason, env["agi_callerid"], "+15559870000", 8.0)


def test_inbound_message_context_base64_body() -> None:
    steps = dialplan_steps(parse_conf(DIALPLAN / "asterisk" / "extensions_textback.conf"))
    [event] = [a for _, _, a, _ in steps["textback-message-in"] if a.startswith("UserEvent(")]
    assert event.startswith("UserEvent(TextbackMessage,")
    assert "Body: ${BASE64_ENCODE(${MESSAGE(body)})}" in event
    # every header value that could hold a comma or line break is encoded
    for header in re.findall(r",([A-Za-z]+): ", event):
        value = event.split(f"{header}: ", 1)[1]
        assert value.startswith(("${URIENCODE(", "${BASE64_ENCODE(")), header


# -- manager.conf user -----------------------------------------------------------------------

def _ami_events() -> list[str]:
    events = []
    for f in sorted(ASTERISK_TRACES.glob("*.ami")):
        events += [b for b in f.read_bytes().decode("utf-8", "replace").split("\r\n\r\n")
                   if b.startswith("Event: ")]
    return events


def test_manager_user_least_privilege() -> None:
    [user] = [s for s in parse_conf(DIALPLAN / "asterisk" / "manager_textback.conf")
              if s.name == "textback"]
    assert user.values("read") == ["call,cdr,agent,user"]
    assert user.values("write") == ["originate,message,reporting"]  # + CoreShowChannels
    assert user.values("deny") == ["0.0.0.0/0.0.0.0"]
    assert user.values("permit") == ["127.0.0.1/255.255.255.255"]
    assert len(user.values("secret")) == 1


def test_manager_eventfilters_on_the_real_events() -> None:
    [user] = [s for s in parse_conf(DIALPLAN / "asterisk" / "manager_textback.conf")
              if s.name == "textback"]
    filters = [re.compile(f) for f in user.values("eventfilter")]
    assert filters and not any(f.pattern.startswith("!") for f in filters)
    classes = set(user.values("read")[0].split(","))

    def delivered(event: str) -> bool:
        priv = re.search(r"\r\nPrivilege: ([a-z,]+)", event)
        allowed = priv is not None and bool(classes & set(priv.group(1).split(",")))
        return allowed and any(f.search(event) for f in filters)

    names: dict[str, set[bool]] = {}
    for ev in _ami_events():
        name = ev.split("\r\n", 1)[0][len("Event: "):]
        if name == "CEL":
            name = "CEL " + re.search(r"EventName: (\w+)", ev).group(1)  # type: ignore[union-attr]
        names.setdefault(name, set()).add(delivered(ev))
    needed = {"Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "BridgeEnter",
              "BridgeLeave", "Cdr", "QueueCallerJoin", "QueueCallerLeave",
              "QueueCallerAbandon", "AgentConnect", "AgentComplete", "AgentRingNoAnswer",
              "MessageWaiting", "CEL LINKEDID_END", "CEL ANSWER", "HangupRequest"}
    for name in needed:
        assert names[name] == {True}, f"{name} would not reach textback"
    noise = {"VarSet", "Newexten", "DeviceStateChange", "DialState", "NewConnectedLine",
             "QueueMemberStatus", "RTCPSent", "SoftHangupRequest",
             "CEL CHAN_START", "AGIExecStart"}
    for name in noise:
        assert names[name] == {False}, f"{name} should be filtered out"


# -- FreePBX -------------------------------------------------------------------------------

def test_freepbx_snippet() -> None:
    sections = parse_conf(DIALPLAN / "freepbx" / "extensions_custom.conf")
    steps = dialplan_steps(sections)
    assert {"from-pstn-custom", "textback-pstn-continue", "textback-hangup"} <= set(steps)
    cont = next(s for s in sections if s.name == "textback-pstn-continue")
    # FreePBX's [from-pstn] after its from-pstn-custom include, in FreePBX's order
    assert cont.values("include") == ["ext-did", "ext-did-post-custom", "from-did-direct",
                                      "ext-did-catchall"]
    assert _goto_targets(steps) <= set(steps)
    text = (DIALPLAN / "freepbx" / "extensions_custom.conf").read_text()
    assert "FreePBX 2.x through 17" in text       # the versions it fits are stated


def test_hangup_handlers_identical_in_both_snippets() -> None:
    a = dialplan_steps(parse_conf(DIALPLAN / "asterisk" / "extensions_textback.conf"))
    b = dialplan_steps(parse_conf(DIALPLAN / "freepbx" / "extensions_custom.conf"))
    strip = [(e, p, app) for e, p, app, _ in a["textback-hangup"]]
    assert strip == [(e, p, app) for e, p, app, _ in b["textback-hangup"]]


# -- FreeSWITCH ----------------------------------------------------------------------------

def _params(root: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in root.iter("param")}


def test_freeswitch_event_socket_on_loopback() -> None:
    ours = ET.parse(DIALPLAN / "freeswitch" / "event_socket.conf.xml").getroot()
    lab = ET.parse(FS_SETUP / "autoload_configs" / "event_socket.conf.xml").getroot()
    assert ours.tag == lab.tag == "configuration"
    assert ours.get("name") == lab.get("name") == "event_socket.conf"
    p, lp = _params(ours), _params(lab)
    assert p["listen-ip"] == "127.0.0.1" and p["listen-port"] == lp["listen-port"] == "8021"
    assert p["apply-inbound-acl"] == lp["apply-inbound-acl"] == "loopback.auto"
    assert set(lp) <= set(p)


def test_freeswitch_inbound_marks_fit_the_public_context() -> None:
    root = ET.parse(DIALPLAN / "freeswitch" / "00_textback_inbound.xml").getroot()
    assert root.tag == "include"
    [ext] = root.findall("extension")
    assert ext.get("continue") == "true"          # the admin's own DID extension still runs
    public = (FS_SETUP / "dialplan" / "public.xml").read_text()
    assert '<context name="public">' in public and 'data="public/*.xml"' in public
    cond = ext.find("condition")
    assert cond is not None and cond.get("field") == "destination_number"
    # the lab's DID matches our condition
    assert re.search(cond.get("expression", ""), "+15559870000")
    hook = [a.get("data", "") for a in cond.iter("action")
            if a.get("data", "").startswith("api_hangup_hook=")]
    assert len(hook) == 1 and hook[0].split("=", 1)[1].startswith("log NOTICE ")


def test_freeswitch_chatplan_needs_mod_sms_and_uses_public() -> None:
    root = ET.parse(DIALPLAN / "freeswitch" / "chatplan_textback.xml").getroot()
    [ctx] = root.findall("context")
    assert ctx.get("name") == "public"
    apps = [a.get("application") for a in root.iter("action")]
    assert apps == ["set", "fire", "stop"]
    modules = ET.parse(FS_SETUP / "autoload_configs" / "modules.conf.xml").getroot()
    assert "mod_sms" in {m.get("module") for m in modules.iter("load")}
    external = ET.parse(FS_SETUP / "sip_profiles" / "external.xml").getroot()
    assert _params(external)["context"] == "public"


def test_freepbx_ami_user_goes_in_manager_custom_conf() -> None:
    """FreePBX regenerates manager.conf; its own #include of manager_custom.conf is where an
    admin's AMI user survives (issue 16 item 7). Same user, same privileges and filters as the
    plain-Asterisk snippet."""
    path = DIALPLAN / "freepbx" / "manager_custom.conf"
    [fpbx] = [s for s in parse_conf(path) if s.name == "textback"]
    [plain] = [s for s in parse_conf(DIALPLAN / "asterisk" / "manager_textback.conf")
               if s.name == "textback"]
    for key in ("read", "write", "deny", "permit", "eventfilter", "writetimeout"):
        assert fpbx.values(key) == plain.values(key), key
    assert len(fpbx.values("secret")) == 1
    text = path.read_text()
    assert "/etc/asterisk/manager_custom.conf" in text and "fwconsole reload" in text
    # FreePBX owns [general]; a second one would fight it
    assert [s.name for s in parse_conf(path)] == ["textback"]


def test_docs_treat_freepbx_and_plain_asterisk_separately() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs"
    asterisk = (docs / "asterisk.md").read_text()
    deploy = (docs / "deploy.md").read_text()
    assert "## The AMI user on plain Asterisk" in asterisk
    assert "## The AMI user on FreePBX" in asterisk
    assert "dialplan/freepbx/manager_custom.conf" in asterisk
    assert "dialplan/freepbx/manager_custom.conf" in deploy


# -- recovery after downtime: the PBX's own records -----------------------------------------
# What each CEL column must hold: the expression Asterisk's cel_sqlite3_custom /
# cel_custom samples (configs/samples/cel_*.conf.sample, legacy mappings) give for it.
CEL_EXPRESSION = {
    "eventtype": "${eventtype}", "eventtime": "${eventtime}",
    "cid_name": "${CALLERID(name)}", "cid_num": "${CALLERID(num)}",
    "cid_ani": "${CALLERID(ANI)}", "cid_dnid": "${CALLERID(DNID)}",
    "exten": "${CHANNEL(exten)}", "context": "${CHANNEL(context)}",
    "channame": "${CHANNEL(channame)}", "appname": "${CHANNEL(appname)}",
    "appdata": "${CHANNEL(appdata)}", "uniqueid": "${CHANNEL(uniqueid)}",
    "linkedid": "${CHANNEL(linkedid)}", "peer": "${BRIDGEPEER}", "extra": "${eventextra}",
}
# the CEL events the recovered decision reads (textback.pbx.asterisk.cel._headers_for)
CEL_EVENTS_NEEDED = {"CHAN_START", "ANSWER", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP",
                     "LINKEDID_END"}


def _one(sections: list[Section], name: str) -> Section:
    found = [s for s in sections if s.name == name]
    assert len(found) == 1, f"exactly one [{name}]"
    return found[0]


def shipped_cel_events() -> set[str]:
    general = _one(parse_conf(DIALPLAN / "asterisk" / "cel.conf"), "general")
    (events,) = general.values("events")
    return {e.strip() for e in events.split(",")}


def test_cel_conf_enables_the_events_recovery_reads_with_epoch_times() -> None:
    general = _one(parse_conf(DIALPLAN / "asterisk" / "cel.conf"), "general")
    assert general.values("enable") == ["yes"]
    assert shipped_cel_events() >= CEL_EVENTS_NEEDED
    # no dateformat: Asterisk's default eventtime is <seconds>.<microseconds> (UTC-free)
    assert general.values("dateformat") == []


def test_cel_sqlite3_custom_writes_the_columns_cel_py_reads() -> None:
    from textback.pbx.asterisk.cel import COLUMNS
    master = _one(parse_conf(DIALPLAN / "asterisk" / "cel_sqlite3_custom.conf"), "master")
    assert master.values("table") == ["cel"]
    (columns,) = master.values("columns")
    assert tuple(c.strip() for c in columns.split(",")) == COLUMNS
    (values,) = master.values("values")
    quoted = [v.strip() for v in values.split(",")]
    assert all(v.startswith("'") and v.endswith("'") for v in quoted)
    assert [v[1:-1] for v in quoted] == [CEL_EXPRESSION[c] for c in COLUMNS]


def test_cel_custom_csv_writes_the_columns_cel_py_reads() -> None:
    from textback.pbx.asterisk.cel import COLUMNS
    mappings = _one(parse_conf(DIALPLAN / "asterisk" / "cel_custom.conf"), "mappings")
    assert [k for k, _, _ in mappings.entries] == ["textback.csv"]
    fields = re.findall(r"\$\{CSV_QUOTE\((.*?)\)\}(?:,|$)", mappings.entries[0][1])
    assert fields == [CEL_EXPRESSION[c] for c in COLUMNS]


# FreeSWITCH: column → the channel variable it holds when the channel hangs up
CDR_VARIABLE = {"sofia_profile": "sofia_profile_name"}


def _template(path: Path) -> str:
    root = ET.parse(path).getroot()
    name = next(p.get("value") for p in root.iter("param")
                if p.get("name") == "default-template")
    (tpl,) = [t for t in root.iter("template") if t.get("name") == name]
    return tpl.text or ""


def test_cdr_csv_template_writes_the_columns_cdr_py_reads() -> None:
    from textback.pbx.freeswitch.cdr import COLUMNS
    path = DIALPLAN / "freeswitch" / "cdr_csv.conf.xml"
    params = {p.get("name"): p.get("value") for p in ET.parse(path).getroot().iter("param")}
    assert params["legs"] == "ab"
    fields = _template(path).split(",")
    assert fields == ['"${' + CDR_VARIABLE.get(c, c) + '}"' for c in COLUMNS]


def test_cdr_sqlite_table_and_template_match_the_columns_cdr_py_reads(
        tmp_path: Path) -> None:
    import sqlite3

    from textback.pbx.freeswitch.cdr import COLUMNS, read_cdr_sqlite
    path = DIALPLAN / "freeswitch" / "cdr_sqlite.conf.xml"
    params = {p.get("name"): p.get("value") for p in ET.parse(path).getroot().iter("param")}
    assert params["db-table"] == "cdr" and params["legs"] == "ab"
    values = _template(path).split(",")
    want = ["'${" + CDR_VARIABLE.get(c, c) + "}'" for c in COLUMNS]
    # the caller's free-text name is not pasted into SQL (FreeSWITCH does not escape it)
    want[COLUMNS.index("caller_id_name")] = "''"
    assert values == want
    # the shipped CREATE TABLE has exactly these columns, and what mod_cdr_sqlite's
    # "INSERT INTO cdr VALUES (<template>)" writes into it reads back
    db = tmp_path / "textback-cdr.db"
    with sqlite3.connect(db) as con:
        con.executescript((DIALPLAN / "freeswitch" / "cdr_sqlite.sql").read_text())
        names = [r[1] for r in con.execute("PRAGMA table_info(cdr)")]
        row = {c: "" for c in COLUMNS}
        row.update(uuid="u1", direction="inbound", end_uepoch="1795394846000000",
                   start_uepoch="1795394838000000")
        literals = ",".join(v if v == "''" else f"'{row[COLUMNS[i]]}'"
                            for i, v in enumerate(values))
        sql = f"INSERT INTO cdr VALUES ({literals})"
        con.execute(sql)
    con.close()
    assert tuple(names) == COLUMNS
    assert [r["uuid"] for r in read_cdr_sqlite(db, since=0)] == ["u1"]
