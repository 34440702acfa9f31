"""The sans-IO AT session against real captures (../shared/modem-data/transcripts.jsonl)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import MODEM_DATA
from textback.modem.at_session import (
    AtSession,
    CommandFailed,
    CommandOk,
    Garbled,
    Prompt,
    SessionError,
    Unsolicited,
)


def _records() -> list[dict]:
    with open(MODEM_DATA / "transcripts.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _exchanges() -> list[tuple[str, dict]]:
    out = []
    for i, rec in enumerate(_records()):
        for j, ex in enumerate(rec["exchanges"]):
            tx = ex.get("tx", "")
            rx = ex.get("rx")
            if not rx or not tx.startswith("AT") or "..." in tx or "<" in tx:
                continue
            if tx.startswith("AT+CMGS"):
                continue
            if rx[-1] not in ("OK", "ERROR", "COMMAND NOT SUPPORT") and not rx[-1].startswith(
                ("+CME ERROR", "+CMS ERROR")
            ):
                continue  # truncated in the source, or Wavecom's AT+CPIN? without OK
            out.append((f"{i}.{j}", ex))
    return out


@pytest.mark.parametrize(("ident", "ex"), _exchanges(), ids=[e[0] for e in _exchanges()])
def test_transcript_exchange_replays(ident: str, ex: dict) -> None:
    """Every complete exchange: the command's lines and final result, echo on as captured."""
    s = AtSession()
    s.command(ex["tx"].replace('"<pin>"', '"1234"'))
    raw = "\r\n".join(ex["rx"]) + "\r\n"
    s.receive_data(raw.encode("utf-8"))
    events = s.events()
    finals = [e for e in events if isinstance(e, CommandOk | CommandFailed)]
    assert len(finals) == 1, events
    last = ex["rx"][-1]
    info = [x for x in ex["rx"][:-1] if x.strip() and x.strip() != ex["tx"]]
    if last == "OK":
        assert isinstance(finals[0], CommandOk)
        urcs = [e.line for e in events if isinstance(e, Unsolicited)]
        assert [x.strip() for x in finals[0].lines] + urcs == [x.strip() for x in info] or (
            sorted([x.strip() for x in finals[0].lines] + urcs) == sorted(x.strip() for x in info)
        )
    else:
        assert isinstance(finals[0], CommandFailed)
        if last.startswith("+CMS ERROR"):
            assert finals[0].error.kind == "CMS"
            assert finals[0].error.code == int(last.split(":")[1])


def test_raw_dump_with_cr_cr_lf_echo() -> None:
    """gammu at-model/06.dump: echo then "\\r\\r\\n" line ends."""
    raw = (MODEM_DATA / "raw/gammu/tests/at-model/06.dump").read_bytes()
    s = AtSession()
    s.command("AT+CGMM")
    s.receive_data(raw)
    (ev,) = [e for e in s.events() if isinstance(e, CommandOk)]
    assert ev.lines == (" MULTIBAND  900E  1800",)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_sim7670_prompt_crlf_from_raw_hex(chunk: int) -> None:
    """SIM7670G: ">" + CRLF after an echo (gammu #1176 raw hex), fed in any chunk size."""
    rec = next(r for r in _records() if r["device"] == "SIMCom SIM7670G")
    raw = bytes.fromhex(rec["exchanges"][0]["raw_hex"])
    s = AtSession()
    s.command("AT+CMGS=26")
    for i in range(0, len(raw), chunk):
        s.receive_data(raw[i : i + chunk])
    assert [type(e) for e in s.events()] == [Prompt]
    assert s.at_prompt


def test_huawei_prompt_space_then_cms_500() -> None:
    """E3531 (gammu #438): bytes 0D 0D 0A 3E 20 after the echo, then +CMS ERROR: 500."""
    s = AtSession()
    s.command("AT+CMGS=18")
    s.receive_data(b"AT+CMGS=18\r\r\n> ")
    assert [type(e) for e in s.events()] == [Prompt]
    out = s.submit_pdu("0011000B911326880736F40000A900")
    assert out.endswith(b"\x1a")
    s.receive_data(b"0011000B911326880736F40000A900\r\n+CMS ERROR: 500\r\n")
    (ev,) = s.events()
    assert isinstance(ev, CommandFailed)
    assert ev.error.code == 500 and ev.error.transient


def test_urc_between_command_and_answer() -> None:
    """^RSSI (Huawei E1752 capture) and +CMTI arrive inside AT+CSQ's answer."""
    s = AtSession()
    s.command("AT+CSQ")
    s.receive_data(b'\r\n^RSSI:13\r\n\r\n+CSQ: 9,99\r\n\r\n+CMTI: "SM",7\r\n\r\nOK\r\n')
    events = s.events()
    assert [e.name for e in events if isinstance(e, Unsolicited)] == ["^RSSI", "+CMTI"]
    (ok,) = [e for e in events if isinstance(e, CommandOk)]
    assert ok.lines == ("+CSQ: 9,99",)


def test_cds_pdu_on_next_line() -> None:
    """ModemManager test_parse_cds: +CDS: 24 then the status-report PDU."""
    rec = next(r for r in _records() if r["urc"] and r["urc"][0].startswith("+CDS:")) \
        if False else next(r for r in _records() if r.get("urc") and r["urc"][0] == "+CDS: 24")
    s = AtSession()
    s.receive_data(("\r\n" + "\r\n".join(rec["urc"]) + "\r\n").encode())
    (ev,) = s.events()
    assert isinstance(ev, Unsolicited) and ev.name == "+CDS" and ev.pdu == rec["urc"][1]


def test_timed_session_capture() -> None:
    """python-gsmmodem #44: +CMTI idle, then CPMS/CMGR/CMGD/CMGS, then +CDS with PDU."""
    rec = next(r for r in _records() if r["kind"] == "session_timed")
    s = AtSession()
    seen: list = []
    for ex in rec["exchanges"]:
        if "urc" in ex:
            s.receive_data(("\r\n" + "\r\n".join(ex["urc"]) + "\r\n").encode())
        elif "tx" in ex:
            tx = ex["tx"]
            if tx.endswith("<Ctrl-Z>"):
                s.submit_pdu(tx[: -len("<Ctrl-Z>")])
            else:
                s.command(tx)
        else:
            rx = ex["rx"]
            data = "\r\n> " if rx == ["> "] else "\r\n" + "\r\n".join(rx) + "\r\n"
            s.receive_data(data.encode())
        seen += s.events()
    kinds = [type(e).__name__ for e in seen]
    assert kinds.count("CommandOk") == 5 and kinds.count("Prompt") == 1
    cds = [e for e in seen if isinstance(e, Unsolicited) and e.name == "+CDS"]
    assert cds and cds[0].pdu and cds[0].pdu.startswith("0791")
    cmgs = [e for e in seen if isinstance(e, CommandOk) and e.command == "AT+CMGS=61"]
    assert cmgs[0].lines == ("+CMGS: 64",)


def test_unsolicited_words_and_boot_lines() -> None:
    s = AtSession()
    s.receive_data(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n\r\nCall Ready\r\nRING\r\n"
                   b"^BOOT:25108651,0,0,0,75\r\n+CEREG: 1\r\n+CUSD: 0,\"hi\",15\r\n")
    names = [e.name for e in s.events() if isinstance(e, Unsolicited)]
    assert names == ["RDY", "+CPIN", "SMS Ready", "Call Ready", "RING", "^BOOT", "+CEREG",
                     "+CUSD"]


def test_asked_prefix_is_a_response_not_urc() -> None:
    s = AtSession()
    s.command("AT+CREG?")
    s.receive_data(b"\r\n+CREG: 2,1,4CA,81DE445\r\n\r\nOK\r\n")
    (ev,) = s.events()
    assert isinstance(ev, CommandOk) and ev.lines == ("+CREG: 2,1,4CA,81DE445",)


def test_garbled_bytes_are_counted_not_raised() -> None:
    s = AtSession()
    s.command("AT")
    s.receive_data(b"\xff\xfe\x00\x81garbage\r\n\x07\x08\r\nOK\r\n")
    events = s.events()
    assert sum(isinstance(e, Garbled) for e in events) == 2
    assert isinstance(events[-1], CommandOk)
    assert s.stats.garbled == 2
    s.receive_data(bytes(range(256)) * 40)  # no crash on any byte soup
    s.events()


def test_stray_ok_with_nothing_running() -> None:
    s = AtSession()
    s.receive_data(b"\r\nOK\r\n")
    assert s.events() == [] and s.stats.stray == 1


@pytest.mark.parametrize("bad", ["AT+CMGS=1\r", "ATD123;\n", "AT\x1a", "AT\x1b", "+CMGS=1", "ATé"])
def test_unsafe_commands_refused(bad: str) -> None:
    with pytest.raises(SessionError):
        AtSession().command(bad)


def test_pdu_must_be_hex_and_only_at_prompt() -> None:
    s = AtSession()
    with pytest.raises(SessionError):
        s.submit_pdu("00")
    s.command("AT+CMGS=1")
    s.receive_data(b"\r\n> ")
    s.events()
    for bad in ("0\r", "00\x1a", "zz", "0", "00\n"):
        with pytest.raises(SessionError):
            s.submit_pdu(bad)
    assert s.abort() == b"\x1b"
    s.receive_data(b"\r\nOK\r\n")
    assert isinstance(s.events()[0], CommandOk)


def test_verbose_cme_error_and_huawei_unsupported() -> None:
    s = AtSession()
    s.command("AT+CPIN?")
    s.receive_data(b"\r\n+CME ERROR: SIM not inserted\r\n")
    (ev,) = s.events()
    assert isinstance(ev, CommandFailed) and ev.error.code is None
    assert ev.error.text == "SIM not inserted"
    s.command("AT+WIND?")
    s.receive_data(b"\r\nCOMMAND NOT SUPPORT\r\n")
    (ev,) = s.events()
    assert isinstance(ev, CommandFailed) and ev.error.kind == "UNSUPPORTED"


@pytest.mark.parametrize("noise", [b"\r\nOK\r\n", b"\r\n\xff\xfe\x1b[0m\r\n~#K+C\r\nOK\r\n"],
                         ids=["stray-ok", "garbage-then-ok"])
def test_ok_without_cmgs_after_the_ctrl_z_is_noise_not_the_answer(noise: bytes) -> None:
    """Issue 12: after the PDU's Ctrl-Z only "+CMGS: <mr>" then OK answers it. An OK
    before it (alone or after garbage) is dropped and counted; the real answer, framed as
    in the timed python-gsmmodem #44 capture, still ends the command with its reference."""
    s = AtSession()
    s.command("AT+CMGS=61")
    s.receive_data(b"\r\n> ")
    assert isinstance(s.events()[0], Prompt)
    s.submit_pdu("00" * 61)
    s.receive_data(noise)
    assert [e for e in s.events() if not isinstance(e, Garbled)] == []
    assert s.busy and s.stats.noise_after_pdu == 1
    s.receive_data(b"\r\n+CMGS: 64\r\n\r\nOK\r\n")
    (ev,) = s.events()
    assert isinstance(ev, CommandOk) and ev.lines == ("+CMGS: 64",) and not s.busy


def test_an_ok_that_ends_an_aborted_prompt_still_ends_it() -> None:
    """ESC at the prompt (no PDU handed): its OK is the answer, not noise."""
    s = AtSession()
    s.command("AT+CMGS=1")
    s.receive_data(b"\r\n> ")
    s.events()
    s.abort()
    s.receive_data(b"\r\nOK\r\n")
    assert isinstance(s.events()[0], CommandOk) and s.stats.noise_after_pdu == 0
