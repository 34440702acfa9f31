"""Timestamps, validity period, DCS and TP-ST (TS 23.040 §9.2.3.11-15, TS 23.038 §4)."""

from __future__ import annotations

import datetime as dt

import pytest

from textback.modem.pdu_error import PduError
from textback.modem.pdu_fields import (
    decode_dcs,
    decode_timestamp,
    encode_dcs,
    status_category,
    status_meaning,
    vp_relative_minutes,
    vp_relative_octet,
)


def test_timestamp_zone_quarter_hours_and_sign() -> None:
    ts = decode_timestamp(bytes.fromhex("11309291024061"))  # ModemManager test_pdu2: +04
    assert ts == dt.datetime(2011, 3, 29, 19, 20, 4, tzinfo=dt.timezone(dt.timedelta(hours=4)))
    ts = decode_timestamp(bytes.fromhex("01901151011129"))  # python-messaging: GMT-3
    assert ts is not None and ts.utcoffset() == dt.timedelta(hours=-3)
    ts = decode_timestamp(bytes.fromhex("91805080905322"))  # +22 quarters = +05:30
    assert ts is not None and ts.utcoffset() == dt.timedelta(hours=5, minutes=30)


@pytest.mark.parametrize("octets", ["11139291024061", "113092910240", "A1309291024061",
                                    "113092910240A1"])
def test_invalid_timestamps_are_none(octets: str) -> None:
    assert decode_timestamp(bytes.fromhex(octets)) is None


@pytest.mark.parametrize(("octet", "minutes"), [
    (0, 5), (143, 720), (144, 750), (167, 1440), (168, 2880), (170, 5760), (196, 43200),
    (197, 50400), (255, 635040)])
def test_vp_relative_table(octet: int, minutes: int) -> None:
    assert vp_relative_minutes(octet) == minutes
    assert vp_relative_octet(minutes) == octet


def test_vp_rounds_up_never_down() -> None:
    for minutes in range(1, 635041, 37):
        octet = vp_relative_octet(minutes)
        assert vp_relative_minutes(octet) >= minutes
        assert octet == 0 or vp_relative_minutes(octet - 1) < minutes
    for bad in (0, -5, 635041):
        with pytest.raises(PduError, match="out of range"):
            vp_relative_octet(bad)
    with pytest.raises(PduError, match="whole number"):
        vp_relative_octet(True)


@pytest.mark.parametrize(("octet", "encoding", "cls"), [
    (0x00, "gsm7", None), (0x04, "8bit", None), (0x08, "ucs2", None), (0x0C, "gsm7", None),
    (0x10, "gsm7", 0), (0x11, "gsm7", 1), (0x16, "8bit", 2), (0x1B, "ucs2", 3),
    (0x48, "ucs2", None), (0xC0, "gsm7", None), (0xE0, "ucs2", None), (0xF1, "gsm7", 1),
    (0xF6, "8bit", 2), (0x80, "gsm7", None)])
def test_dcs_groups(octet: int, encoding: str, cls: int | None) -> None:
    dcs = decode_dcs(octet)
    assert (dcs.encoding, dcs.msg_class) == (encoding, cls)


def test_dcs_compressed_and_encode() -> None:
    assert decode_dcs(0x20).compressed is True
    assert (encode_dcs("gsm7", None), encode_dcs("ucs2", 1), encode_dcs("gsm7", 0)) == (
        0x00, 0x19, 0x10)
    with pytest.raises(PduError, match="message class"):
        encode_dcs("gsm7", 5)


@pytest.mark.parametrize(("st", "category", "words"), [
    (0x00, "delivered", "received by the SME"), (0x1F, "delivered", "SC specific"),
    (0x21, "pending", "busy"), (0x46, "failed", "validity period expired"),
    (0x63, "failed", "stopped trying"), (0x4A, "failed", "reserved"),
    (0xFF, "failed", "reserved")])
def test_status_values(st: int, category: str, words: str) -> None:
    assert status_category(st) == category
    assert words in status_meaning(st)
