"""Multipart SMS reassembly, sans-IO: parts in (with where they sit on the SIM), messages out.

Parts of one concatenated SMS can arrive minutes apart, out of order, or never. A message
is handed over when every part is there, or when ``timeout`` seconds passed since its first
part: then what arrived is delivered (``complete`` False, ``missing`` lists the gaps) rather
than lost. Each part keeps its storage location so the driver deletes it from the SIM only
after the whole message has been stored by the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InboundMessage:
    """A received text, whole or as much as arrived. ``locations`` are (storage, index)
    pairs still on the modem (empty for +CMT direct delivery)."""

    number: str | None
    text: str
    timestamp: str | None
    smsc: str | None
    parts: int
    received: int
    complete: bool
    concat_ref: int | None = None
    missing: tuple[int, ...] = ()
    locations: tuple[tuple[str, int], ...] = ()


@dataclass
class _Assembly:
    first_seen: float
    parts: int
    number: str | None
    smsc: str | None
    timestamp: str | None
    texts: dict[int, str] = field(default_factory=dict)
    locations: list[tuple[str, int]] = field(default_factory=list)


Key = tuple[str | None, int, int, int]


class Reassembler:
    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self._open: dict[Key, _Assembly] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(
        self,
        *,
        number: str | None,
        text: str,
        timestamp: str | None,
        smsc: str | None,
        now: float,
        concat: tuple[int, int, int, int] | None = None,
        location: tuple[str, int] | None = None,
    ) -> InboundMessage | None:
        """One part; ``concat`` is (ref, ref_bits, part, parts) or None for a single SMS.
        Returns the message when this part completes it."""
        loc = (location,) if location else ()
        if concat is None or concat[3] <= 1:
            return InboundMessage(number, text, timestamp, smsc, 1, 1, True, None, (), loc)
        ref, bits, part, parts = concat
        key: Key = (number, ref, bits, parts)
        asm = self._open.get(key)
        if asm is None:
            asm = self._open[key] = _Assembly(now, parts, number, smsc, timestamp)
        if part not in asm.texts:
            asm.texts[part] = text
        if location and location not in asm.locations:
            asm.locations.append(location)
        if part == 1:
            asm.timestamp = timestamp
        if len(asm.texts) >= parts:
            del self._open[key]
            return self._message(asm, ref)
        return None

    def expire(self, now: float) -> list[InboundMessage]:
        """Messages whose first part is older than ``timeout``: delivered as they are."""
        out = []
        for key, asm in list(self._open.items()):
            if now - asm.first_seen >= self.timeout:
                del self._open[key]
                out.append(self._message(asm, key[1]))
        return out

    @staticmethod
    def _message(asm: _Assembly, ref: int) -> InboundMessage:
        missing = tuple(i for i in range(1, asm.parts + 1) if i not in asm.texts)
        text = "".join(asm.texts[i] for i in sorted(asm.texts))
        return InboundMessage(
            asm.number, text, asm.timestamp, asm.smsc, asm.parts, len(asm.texts),
            not missing, ref, missing, tuple(asm.locations),
        )
