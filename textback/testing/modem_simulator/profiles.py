"""Dialect profiles: how each modem family talks, taken from real captures where we have one.

Sources (../shared/modem-data): transcripts.jsonl record numbers in brackets, timing.jsonl
for delays. Where no capture of a family exists in the shared data (SIM800L, EC25 boot lines,
the SIM800L ds=2 refusal) the behaviour follows the vendor AT manuals as the issue describes
it, and the comment says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timing:
    """Seconds, before ``time_scale``. From timing.jsonl: prompt 86 ms (python-gsmmodem #44),
    CPMS/CMGR/CMGD 99-223 ms (same log), +CMGS 2-3 s per part (gammu #419), +CDS ~6 s
    after +CMGS (python-gsmmodem #44), +CDSI ~1 s (EC25, chan-quectel PR #75)."""

    command: float = 0.1
    prompt: float = 0.086
    submit: float = 2.5
    report: float = 6.0
    boot: float = 3.0


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    revision: str
    prompt: bytes = b"\r\n> "
    boot_urcs: tuple[str, ...] = ()
    unknown_reply: str = "ERROR"
    cnmi_ds_max: int = 2  # highest <ds> AT+CNMI accepts
    cnmi_test: str = "+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"
    cpms_test: str = '+CPMS: ("SM","ME","MT"),("SM","ME","MT"),("SM","ME","MT")'
    cdsi_announce: str | None = None  # None: announce the storage really used
    supports_cfun_reset: bool = True
    periodic_urc: str | None = None  # e.g. Huawei ^RSSI
    periodic_seconds: float = 10.0
    operator: str = '+COPS: 0,0,"Simulated Net",7'
    smsc: str = "+447785016005"
    creg_command: str = "AT+CREG?"
    # URCs when the SIM is pulled / pushed back in (after insertion the engine adds
    # "+CPIN: READY" or "+CPIN: SIM PIN" when ``sim_insert_cpin``). Empty = the modem says
    # nothing: the driver finds out by AT+CPIN? or a failed send (the worst case).
    sim_removed_urcs: tuple[str, ...] = ()
    sim_insert_cpin: bool = False
    # the vendor's command that reads the SIM's ICCID and its answer ({iccid}); None: the
    # modem has none we can source (27.007 defines no ICCID command), so unknown_reply
    iccid_command: str | None = None
    iccid_reply: str = "{iccid}"
    timing: Timing = field(default_factory=Timing)


PROFILES: dict[str, Profile] = {
    # SIM800L: no capture in the shared data; boot lines and the AT+CNMI ds range follow the
    # SIM800 Series AT Command Manual V1.10 (ds 0-1 only) as the issue states.
    "sim800l": Profile(
        name="sim800l", manufacturer="SIMCOM_Ltd", model="SIMCOM_SIM800L",
        revision="Revision:1418B04SIM800L24",
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
        cnmi_ds_max=1, cnmi_test="+CNMI: (0-3),(0-3),(0,2),(0,1),(0,1)",
        cpms_test='+CPMS: ("SM","ME","SM_P","ME_P","MT"),("SM","ME","SM_P","ME_P","MT"),'
                  '("SM","ME","SM_P","ME_P","MT")',
        operator='+COPS: 0,0,"Simulated Net"',
        # SIM800 Series AT Command Manual V1.09 p. 352 (URC list): "+CPIN: NOT READY" and
        # "+CPIN: NOT INSERTED" for the SIM, "+CPIN: <code>" when it asks for a password
        sim_removed_urcs=("+CPIN: NOT READY",), sim_insert_cpin=True,
        # SIM800 Series AT Command Manual V1.09, AT+CCID "Show ICCID": the bare ICCID
        iccid_command="AT+CCID",
    ),
    # SIM7600: boot lines RDY / +CPIN: READY / SMS DONE / PB DONE [#97].
    "sim7600": Profile(
        name="sim7600", manufacturer="SIMCOM INCORPORATED", model="SIMCOM_SIM7600E-H",
        revision="+CGMR: LE20B04SIM7600M22",
        boot_urcs=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"),
        cpms_test='+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")',
        creg_command="AT+CEREG?",
        # no capture of a SIM swap: assumed as the SIM800 manual gives for SIMCom
        sim_removed_urcs=("+CPIN: NOT READY",), sim_insert_cpin=True,
        # SIM7500/SIM7600 Series AT Command Manual, AT+CICCID "Read ICCID from SIM card"
        iccid_command="AT+CICCID", iccid_reply="+ICCID: {iccid}",
    ),
    # SIM7670G: the prompt is ">" + CRLF, no space (gammu #1176, raw hex in [#96]).
    "sim7670": Profile(
        name="sim7670", manufacturer="SIMCOM INCORPORATED", model="SIM7670G-MNGV",
        revision="+CGMR: 2374B04SIM767XM5A_M", prompt=b"\r\n>\r\n",
        boot_urcs=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"),
        cpms_test='+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")',
        creg_command="AT+CEREG?",
    ),
    # Quectel EC25: +CDSI announces "SM" while the report sits in "SR" (chan-quectel PR #75,
    # timing.jsonl: +CDSI ~1 s after +CMGS). Boot lines per the EC25 AT manual (+QIND).
    "ec25": Profile(
        name="ec25", manufacturer="Quectel", model="EC25", revision="EC25EFAR06A06M4G",
        boot_urcs=("RDY", "+CPIN: READY", "+QIND: SMS DONE", "+QIND: PB DONE"),
        cdsi_announce="SM",
        cpms_test='+CPMS: ("SM","ME","MT","SR"),("SM","ME","MT","SR"),("SM","ME","MT","SR")',
        creg_command="AT+CEREG?", timing=Timing(report=1.0),
        # no capture: the EC25 reports "+CPIN: NOT INSERTED" on removal (+QSIMSTAT only
        # after AT+QSIMSTAT=1, which textback does not send) and +CPIN: <code> on insertion
        sim_removed_urcs=("+CPIN: NOT INSERTED",), sim_insert_cpin=True,
        # EC25&EC21 AT Commands Manual V1.3, AT+QCCID "Show ICCID"; a Quectel EG916Q's
        # real answer has the same form (forums.quectel.com/t/34559: "+QCCID: 8988…")
        iccid_command="AT+QCCID", iccid_reply="+QCCID: {iccid}",
    ),
    # Huawei E3372 / E173: ^RSSI every ~10 s while idle [#90, #93], prompt after "\r\r\n"
    # (bytes 0D 0D 0A 3E 20, E3531 [#91]), "COMMAND NOT SUPPORT" for unknown commands
    # (E1752 [#75]); CPMS storages ME/MT/SM/SR [#75]. No AT+CFUN=1,1 reset assumed.
    "e3372": Profile(
        name="e3372", manufacturer="huawei", model="E3372", revision="21.180.01.00.00",
        prompt=b"\r\n> ", boot_urcs=("^BOOT:25108651,0,0,0,75",),
        unknown_reply="COMMAND NOT SUPPORT", periodic_urc="^RSSI:25",
        cpms_test='+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")',
        supports_cfun_reset=False,
        # Huawei's AT command interface specifications: AT^ICCID? -> ^ICCID: <iccid> (the
        # E1752's AT+CLAC in the shared transcripts lists ^ICCID; no capture of its answer)
        iccid_command="AT^ICCID?", iccid_reply="^ICCID: {iccid}",
    ),
    "e173": Profile(
        name="e173", manufacturer="huawei", model="E173", revision="11.126.85.00.209",
        boot_urcs=("^BOOT:25108651,0,0,0,75",), unknown_reply="COMMAND NOT SUPPORT",
        periodic_urc="^RSSI:13",
        cpms_test='+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM","SR")',
        supports_cfun_reset=False,
        iccid_command="AT^ICCID?", iccid_reply="^ICCID: {iccid}",  # as the E3372's
    ),
    # Generic 27.005 modem (gammu tests/at-cpms/generic.dump [#2]).
    "generic": Profile(
        name="generic", manufacturer="Generic", model="GSM Modem", revision="1.0",
        cpms_test='+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")',
    ),
}
