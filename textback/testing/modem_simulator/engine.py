"""The simulated modem's brain, sans-IO: bytes from the driver in, (delay, bytes) out.

It answers the AT commands textback and common tools use, the way the dialect profile says
(prompt bytes, boot lines, unknown-command reply, AT+CNMI limits, where status reports are
stored), keeps SMS storages (SM/ME/SR), and records every PDU it accepted so tests and
benchmarks can assert what the "network" received. The pty host (``host.py``) turns the
delays into time and the bytes into pty writes; this module never sleeps.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from textback.modem.pdu import DecodedPdu, PduError, decode_pdu
from textback.testing.modem_simulator.deliver import encode_deliver, encode_status_report
from textback.testing.modem_simulator.profiles import Profile

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
# the simulated SIM's serial number: ITU-T E.118 form (89 = telecom), on the 001-01 test
# network its IMSI 001010123456789 names
SIM_ICCID = "8900101012345678901"


@dataclass(frozen=True)
class AcceptedPdu:
    """One SMS-SUBMIT the simulated network took, decoded, with the TP-MR it was given."""

    pdu: str
    tpdu_length: int
    decoded: DecodedPdu
    mr: int
    at: float


@dataclass
class Stored:
    stat: int  # 0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT
    pdu: str
    length: int


@dataclass
class EngineState:
    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    cnmi: tuple[int, ...] = (0, 0, 0, 0, 0)
    mem: list[str] = field(default_factory=lambda: ["SM", "SM", "SM"])
    pin_entered: bool = False


class ModemEngine:
    """One simulated modem. Public knobs are the failure injections the tests use."""

    def __init__(self, profile: Profile, *, pin: str | None = None,
                 auto_reports: bool = True) -> None:
        self.profile = profile
        self.pin = pin  # a PIN the SIM asks for; None = no PIN lock
        self.registered = True
        self.sim_inserted = True
        # answers to the next accepted PDUs held back this many real seconds (None: never
        # written) - a modem that hangs after the Ctrl-Z; consumed one per accepted PDU
        self.submit_stalls: list[float | None] = []
        # bytes written between the Ctrl-Z of the next accepted PDUs and their answer (a
        # stray "OK", line garbage, a bare "ERROR"): consumed one per accepted PDU
        self.submit_noise: list[bytes] = []
        self.auto_reports = auto_reports
        self.report_status = 0
        self.state = EngineState(pin_entered=pin is None)
        self.storage: dict[str, dict[int, Stored]] = {"SM": {}, "ME": {}, "SR": {}}
        self.capacity = 30
        self.accepted: list[AcceptedPdu] = []
        self.text_mode_sends: list[bytes] = []
        self.commands: list[str] = []
        self.rejected_pdus: list[str] = []
        self._out: list[tuple[float, bytes]] = []
        self._late: list[tuple[float, bytes]] = []  # (real seconds, bytes): stalled answers
        self._line = bytearray()
        self._pdu_mode: int | None = None  # tpdu length awaited after the prompt
        self._mr = 0

    # ---------------------------------------------------------------- host interface

    def take_output(self) -> list[tuple[float, bytes]]:
        out, self._out = self._out, []
        return out

    def take_late(self) -> list[tuple[float, bytes]]:
        """Answers held back by ``submit_stalls``: (real seconds from now, bytes)."""
        out, self._late = self._late, []
        return out

    def boot(self) -> None:
        """Power on: the dialect's boot lines (with the PIN state they imply)."""
        self.state = EngineState(pin_entered=self.pin is None and self.sim_inserted)
        self._pdu_mode = None
        self._line.clear()
        for urc in self.profile.boot_urcs:
            if urc == "+CPIN: READY" and not self.sim_inserted:
                break
            if urc == "+CPIN: READY" and not self.state.pin_entered:
                self._urc("+CPIN: SIM PIN", self.profile.timing.boot)
                break
            if urc in ("SMS Ready", "Call Ready", "SMS DONE", "+QIND: SMS DONE") and (
                not self.state.pin_entered
            ):
                continue
            self._urc(urc, self.profile.timing.boot if urc == self.profile.boot_urcs[0] else 0)

    def feed(self, data: bytes) -> None:
        for byte in data:
            if self._pdu_mode is not None:
                if byte == 0x1A:
                    self._submit(bytes(self._line).decode("latin-1"))
                    self._line.clear()
                elif byte == 0x1B:
                    self._pdu_mode = None
                    self._line.clear()
                    self._ok()
                elif byte not in (0x0D, 0x0A):
                    self._line.append(byte)
                    if self.state.echo:
                        self._out.append((0.0, bytes((byte,))))
                continue
            if byte == 0x1B:
                continue  # ESC outside a prompt: no meaning on a command line (V.250)
            if byte == 0x0D:
                line = bytes(self._line)
                self._line.clear()
                if self.state.echo:
                    self._out.append((0.0, line + b"\r"))
                self._command(line)
            elif byte == 0x0A:
                continue
            else:
                self._line.append(byte)
                if len(self._line) > 1024:
                    self._line.clear()

    def remove_sim(self) -> None:
        """The SIM is pulled out: no PIN state, no registration (27.007 +CREG 0,0), SIM
        commands fail with +CME ERROR: 10 / +CMS ERROR: 310 "SIM not inserted", and the
        dialect's removal URC if it has one (profiles.py says where each comes from)."""
        if not self.sim_inserted:
            return
        self.sim_inserted = False
        self.state.pin_entered = False
        for urc in self.profile.sim_removed_urcs:
            self._urc(urc)

    def insert_sim(self) -> None:
        """The SIM goes back in: it asks for its PIN again if it has one (a fresh SIM
        session); SIMCom and Quectel then say "+CPIN: READY" or "+CPIN: SIM PIN", and, once
        ready, their SMS-ready lines, as after boot."""
        if self.sim_inserted:
            return
        self.sim_inserted = True
        self.state.pin_entered = self.pin is None
        if not self.profile.sim_insert_cpin:
            return
        if not self.state.pin_entered:
            self._urc("+CPIN: SIM PIN", self.profile.timing.command)
            return
        self._urc("+CPIN: READY", self.profile.timing.command)
        for urc in self.profile.boot_urcs:
            if urc in ("Call Ready", "SMS Ready", "SMS DONE", "+QIND: SMS DONE"):
                self._urc(urc, self.profile.timing.command)

    def periodic(self) -> None:
        if self.profile.periodic_urc:
            self._urc(self.profile.periodic_urc)

    # ---------------------------------------------------------------- injections

    def inject_sms(self, sender: str, text: str, *, direct: bool | None = None,
                   concat_ref: int = 0x42) -> list[str]:
        """A text from the network. ``direct`` None follows AT+CNMI (mt=2: +CMT, mt=1:
        store + +CMTI); True forces +CMT. Returns the DELIVER PDUs announced."""
        pdus = encode_deliver(sender, text, concat_ref=concat_ref)
        mt = self.state.cnmi[1] if len(self.state.cnmi) > 1 else 0
        for pdu, length in pdus:
            if direct or (direct is None and mt in (2, 3)):
                self._urc(f"+CMT: ,{length}\r\n{pdu}")
                continue
            mem = self.state.mem[2]
            idx = self._store(mem, Stored(0, pdu, length))
            if mt in (1, 2, 3):
                self._urc(f'+CMTI: "{mem}",{idx}')
        return [p for p, _ in pdus]

    def inject_pdu(self, pdu: str, length: int | None = None) -> int:
        """A DELIVER PDU exactly as given (hex with SMSC octets, even one no codec can
        read), stored and announced with +CMTI as AT+CNMI asks; its storage index."""
        if length is None:
            raw = bytes.fromhex(pdu)
            length = max(0, len(raw) - raw[0] - 1) if raw else 0
        mem = self.state.mem[2]
        idx = self._store(mem, Stored(0, pdu, length))
        mt = self.state.cnmi[1] if len(self.state.cnmi) > 1 else 0
        if mt in (1, 2, 3):
            self._urc(f'+CMTI: "{mem}",{idx}')
        return idx

    def inject_report(self, mr: int, recipient: str, *, status: int = 0,
                      delay: float = 0.0) -> str:
        """A status report for TP-MR ``mr``: +CDS (ds=1) or stored in SR + +CDSI (ds=2)."""
        pdu, length = encode_status_report(recipient, mr, status=status)
        ds = self.state.cnmi[3] if len(self.state.cnmi) > 3 else 0
        if ds == 1:
            self._urc(f"+CDS: {length}\r\n{pdu}", delay)
        else:
            mem = "SR" if '"SR"' in self.profile.cpms_test else self.state.mem[2]
            idx = self._store(mem, Stored(0, pdu, length))
            if ds == 2:
                announce = self.profile.cdsi_announce or mem
                self._urc(f'+CDSI: "{announce}",{idx}', delay)
        return pdu

    # ---------------------------------------------------------------- output helpers

    def _emit(self, text: str, delay: float = 0.0) -> None:
        self._out.append((delay, text.encode("utf-8")))

    def _urc(self, line: str, delay: float = 0.0) -> None:
        self._emit(f"\r\n{line}\r\n", delay)

    def _ok(self, lines: tuple[str, ...] = (), delay: float | None = None) -> None:
        body = "".join(f"\r\n{line}\r\n" for line in lines)
        self._emit(body + "\r\nOK\r\n", self.profile.timing.command if delay is None else delay)

    def _error(self, kind: str = "", code: int = 0, delay: float | None = None) -> None:
        text = f"+{kind} ERROR: {code}" if kind and self.state.cmee else "ERROR"
        self._emit(f"\r\n{text}\r\n", self.profile.timing.command if delay is None else delay)

    def _unknown(self) -> None:
        self._emit(f"\r\n{self.profile.unknown_reply}\r\n", self.profile.timing.command)

    def _store(self, mem: str, item: Stored) -> int:
        box = self.storage.setdefault(mem, {})
        idx = 0
        while idx in box:
            idx += 1
        box[idx] = item
        return idx

    def _next_mr(self) -> int:
        mr = self._mr
        self._mr = (self._mr + 1) % 256
        return mr

    # ---------------------------------------------------------------- commands

    def _command(self, raw: bytes) -> None:
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            self._error()
            return
        if not line:
            return
        self.commands.append(line)
        upper = line.upper()
        if not upper.startswith("AT"):
            self._error()
            return
        body = line[2:]
        ubody = body.upper()
        st = self.state
        if ubody == "":
            self._ok()
        elif ubody in ("E0", "E1", "E"):
            st.echo = ubody == "E1"
            self._ok()
        elif ubody in ("Z", "&F"):
            self._ok()
        elif ubody == "I":
            p = self.profile
            self._ok((p.manufacturer, p.model, p.revision))
        elif ubody == "+CGMI":
            self._ok((self.profile.manufacturer,))
        elif ubody == "+CGMM":
            self._ok((self.profile.model,))
        elif ubody == "+CGMR":
            self._ok((self.profile.revision,))
        elif ubody == "+CGSN":
            self._ok(("001010123456789",))  # the IMEI: the modem's, SIM or not
        elif ubody == "+CIMI":
            if self._need_sim():
                self._ok(("001010123456789",))
        elif self.profile.iccid_command and ubody == self.profile.iccid_command[2:].upper():
            if self._need_sim():
                self._ok((self.profile.iccid_reply.format(iccid=SIM_ICCID),))
        elif ubody.startswith("+CMEE="):
            st.cmee = int(ubody[6:] or 0) if ubody[6:].isdigit() else 0
            self._ok()
        elif ubody == "+CPIN?":
            if not self.sim_inserted:  # 27.007 9.2: 10 = SIM not inserted (Wavecom manual 2.5)
                self._error("CME", 10)
            else:
                self._ok(("+CPIN: READY" if st.pin_entered else "+CPIN: SIM PIN",))
        elif ubody.startswith("+CPIN="):
            self._enter_pin(body[6:].strip().strip('"'))
        elif ubody.startswith("+CMGF="):
            if ubody[6:] in ("0", "1"):
                st.cmgf = int(ubody[6:])
                self._ok()
            else:
                self._error("CMS", 302)
        elif ubody == "+CMGF?":
            self._ok((f"+CMGF: {st.cmgf}",))
        elif ubody == "+CSMS?":
            self._ok(("+CSMS: 0,1,1,1",))
        elif ubody == "+CNMI=?":
            self._ok((self.profile.cnmi_test,))
        elif ubody == "+CNMI?":
            self._ok(("+CNMI: " + ",".join(map(str, st.cnmi)),))
        elif ubody.startswith("+CNMI="):
            self._cnmi(ubody[6:])
        elif ubody == "+CPMS=?":
            self._ok((self.profile.cpms_test,))
        elif ubody == "+CPMS?":
            self._ok(("+CPMS: " + ",".join(
                f'"{m}",{len(self.storage.get(m, {}))},{self.capacity}' for m in st.mem),))
        elif ubody.startswith("+CPMS="):
            self._cpms(ubody[6:])
        elif ubody == "+CSQ":
            self._ok(("+CSQ: 20,99" if self.registered else "+CSQ: 99,99",))
        elif ubody in ("+CREG?", "+CEREG?", "+CGREG?"):
            name = ubody[:-1]
            self._ok((f"{name}: 0,{1 if self.registered and st.pin_entered else 0}",))
        elif re.match(r"^\+C(E|G)?REG=\d$", ubody):
            self._ok()
        elif ubody == "+COPS?":
            self._ok((self.profile.operator if self.registered and self.sim_inserted
                      else "+COPS: 0",))
        elif ubody == "+CSCA?":
            if self._need_sim("CMS"):
                self._ok((f'+CSCA: "{self.profile.smsc}",145',))
        elif ubody.startswith("+CSCA="):
            self._ok()
        elif ubody == "+CFUN?":
            self._ok(("+CFUN: 1",))
        elif ubody.startswith("+CFUN="):
            self._cfun(ubody[6:])
        elif ubody.startswith("+CMGS="):
            self._cmgs(body[6:])
        elif ubody.startswith("+CMGR="):
            self._cmgr(ubody[6:])
        elif ubody.startswith("+CMGD="):
            self._cmgd(ubody[6:])
        elif ubody.startswith("+CMGL"):
            self._cmgl()
        elif ubody.startswith("+CNMA"):
            self._ok(delay=0.0)
        else:
            self._unknown()

    def _need_sim(self, kind: str = "CME") -> bool:
        """No SIM: 27.005 commands (kind CMS) answer +CMS ERROR: 310, 27.007 ones +CME
        ERROR: 10, both "SIM not inserted". A locked SIM: +CME ERROR: 11 as before."""
        if not self.sim_inserted:
            self._error(kind, 310 if kind == "CMS" else 10)
            return False
        if not self.state.pin_entered:
            self._error("CME", 11)
            return False
        return True

    def _enter_pin(self, value: str) -> None:
        if not self.sim_inserted:
            self._error("CME", 10)
        elif self.state.pin_entered:
            self._error("CME", 3)
        elif value == self.pin:
            self.state.pin_entered = True
            self._ok()
            self._urc("+CPIN: READY")
            for urc in self.profile.boot_urcs:
                if urc in ("Call Ready", "SMS Ready", "SMS DONE", "+QIND: SMS DONE"):
                    self._urc(urc, self.profile.timing.command)
        else:
            self._error("CME", 16)

    def _cnmi(self, args: str) -> None:
        try:
            values = tuple(int(v) if v else 0 for v in args.split(","))
        except ValueError:
            self._error("CMS", 303)
            return
        if len(values) > 5 or (len(values) > 3 and values[3] > self.profile.cnmi_ds_max):
            self._error("CMS", 303)
            return
        self.state.cnmi = values + (0,) * (5 - len(values))
        self._ok()

    def _cpms(self, args: str) -> None:
        mems = [m.strip().strip('"') for m in args.split(",")]
        if not self._need_sim("CMS"):
            return
        known = {m for m in re.findall(r'"([A-Z_]+)"', self.profile.cpms_test)}
        if not mems or any(m and m not in known for m in mems):
            self._error("CMS", 302)
            return
        for i, m in enumerate(mems[:3]):
            if m:
                self.state.mem[i] = m
        self._ok(("+CPMS: " + ",".join(
            f"{len(self.storage.get(m, {}))},{self.capacity}" for m in self.state.mem),))

    def _cfun(self, args: str) -> None:
        if args.replace(" ", "") == "1,1":
            if not self.profile.supports_cfun_reset:
                self._unknown()
                return
            self._ok()
            self.boot()
            return
        self._ok()

    def _cmgs(self, args: str) -> None:
        if not self._need_sim("CMS"):
            return
        if self.state.cmgf == 1:
            self._pdu_mode = -1  # text mode: whatever comes is recorded as a violation
        else:
            if not args.strip().isdigit():
                self._error("CMS", 304)
                return
            self._pdu_mode = int(args.strip())
        self._out.append((self.profile.timing.prompt, self.profile.prompt))

    def _submit(self, pdu: str) -> None:
        expected = self._pdu_mode
        self._pdu_mode = None
        t = self.profile.timing
        if expected == -1:
            self.text_mode_sends.append(pdu.encode("latin-1"))
            self._error("CMS", 500, t.submit)
            return
        pdu = pdu.strip()
        try:
            if not _HEX.fullmatch(pdu):
                raise PduError("not hex")
            decoded = decode_pdu(pdu, has_smsc=True)
            if decoded.direction != "submit" or decoded.tpdu_length != expected:
                raise PduError("length or direction mismatch")
        except PduError:
            self.rejected_pdus.append(pdu)
            self._error("CMS", 304, t.submit)
            return
        if not self.registered:
            self._error("CMS", 500, t.submit)
            return
        mr = self._next_mr()
        self.accepted.append(AcceptedPdu(pdu, expected or 0, decoded, mr, time.monotonic()))
        if self.submit_noise:
            # line noise after the Ctrl-Z, before the answer: the answer itself is unchanged
            self._out.append((0.0, self.submit_noise.pop(0)))
        if self.submit_stalls:
            # the network took it, the answer comes late or never (a hang after Ctrl-Z)
            stall = self.submit_stalls.pop(0)
            if stall is not None:
                self._late.append((stall, f"\r\n+CMGS: {mr}\r\n\r\nOK\r\n".encode()))
        else:
            self._ok((f"+CMGS: {mr}",), t.submit)
        if self.auto_reports and decoded.status_report_request and decoded.number:
            self.inject_report(mr, decoded.number, status=self.report_status, delay=t.report)

    def _cmgr(self, args: str) -> None:
        if not self._need_sim("CMS"):
            return
        box = self.storage.get(self.state.mem[0], {})
        idx = int(args) if args.isdigit() else -1
        item = box.get(idx)
        if item is None:
            self._error("CMS", 321)
            return
        stat = item.stat
        if item.stat == 0:
            item.stat = 1
        self._ok((f"+CMGR: {stat},,{item.length}", item.pdu))

    def _cmgd(self, args: str) -> None:
        if not self._need_sim("CMS"):
            return
        parts = args.split(",")
        box = self.storage.get(self.state.mem[0], {})
        if len(parts) > 1 and parts[1].strip() == "4":
            box.clear()
        elif parts[0].isdigit():
            box.pop(int(parts[0]), None)
        else:
            self._error("CMS", 321)
            return
        self._ok()

    def _cmgl(self) -> None:
        if not self._need_sim("CMS"):
            return
        box = self.storage.get(self.state.mem[0], {})
        lines: list[str] = []
        for idx in sorted(box):
            item = box[idx]
            lines += [f"+CMGL: {idx},{item.stat},,{item.length}", item.pdu]
            if item.stat == 0:
                item.stat = 1
        self._ok(tuple(lines))
