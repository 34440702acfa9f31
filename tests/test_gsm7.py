"""GSM 03.38 tables, septet counting and packing (TS 23.038 §6.2.1, TS 23.040 §9.2.3.24)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textback.modem import gsm7

BASIC = [c for i, c in enumerate(gsm7.DEFAULT_ALPHABET) if i != gsm7.ESC]
EXTENSION = list(gsm7.EXTENSION_TABLE.values())
GSM_TEXT = st.text(alphabet=st.sampled_from(BASIC + EXTENSION), max_size=300)


def test_tables_spot_checks_against_the_spec() -> None:
    # a few code points that implementations commonly get wrong
    assert gsm7.DEFAULT_ALPHABET[0x00] == "@"
    assert gsm7.DEFAULT_ALPHABET[0x09] == "Ç"  # capital C cedilla in the spec table
    assert gsm7.DEFAULT_ALPHABET[0x11] == "_"
    assert gsm7.DEFAULT_ALPHABET[0x24] == "¤"  # not '$' (that is 0x02)
    assert gsm7.DEFAULT_ALPHABET[0x40] == "¡"
    assert gsm7.DEFAULT_ALPHABET[0x5F] == "§"  # gsmmodem maps it to '`' (its known fault)
    assert gsm7.DEFAULT_ALPHABET[0x60] == "¿"
    assert gsm7.DEFAULT_ALPHABET[0x7F] == "à"
    assert gsm7.EXTENSION_TABLE[0x65] == "€"
    assert gsm7.EXTENSION_TABLE[0x0A] == "\f"
    assert len(set(BASIC)) == 127 and not set(BASIC) & set(EXTENSION)


def test_fits_and_counts() -> None:
    assert gsm7.fits_gsm7("Hello @ £5 [ok] €") is True
    assert gsm7.fits_gsm7("naïve") is False  # ï is not in the table
    assert gsm7.fits_gsm7("`") is False
    assert gsm7.fits_gsm7("") is True
    assert gsm7.count_septets("a€[") == 5
    assert gsm7.non_gsm7_chars("héllo 😀 ï😀") == ["😀", "ï"]
    with pytest.raises(ValueError, match="index 2"):
        gsm7.count_septets("ab😀")
    with pytest.raises(ValueError, match="not in the GSM"):
        gsm7.encode_septets("ç")


def test_extension_characters_become_escape_pairs() -> None:
    assert gsm7.encode_septets("€") == [0x1B, 0x65]
    assert gsm7.decode_septets([0x1B, 0x65, 0x41]) == "€A"


def test_receiver_rules_for_odd_escapes() -> None:
    # ESC + undefined code shows the default character; ESC ESC and a dangling ESC a space
    assert gsm7.decode_septets([0x1B, 0x41]) == "A"
    assert gsm7.decode_septets([0x1B, 0x1B, 0x41]) == " A"
    assert gsm7.decode_septets([0x41, 0x1B]) == "A "


def test_pack_known_vector() -> None:
    # "hellohello" from TS 23.040 examples (ofono unit test, ModemManager test_pdu3)
    packed = gsm7.pack_septets(gsm7.encode_septets("hellohello"))
    assert packed.hex().upper() == "E8329BFD4697D9EC37"


def test_fill_bits_after_udh() -> None:
    assert gsm7.fill_bits(6) == 1 and gsm7.header_septets(6) == 7
    assert gsm7.fill_bits(7) == 0 and gsm7.header_septets(7) == 8
    header = bytes.fromhex("050003CC0201")
    packed = gsm7.pack_septets(gsm7.encode_septets("Hi"), header)
    assert packed[:6] == header
    assert gsm7.unpack_septets(packed, 7 + 2, 6) == gsm7.encode_septets("Hi")


@given(GSM_TEXT, st.sampled_from([0, 6, 7, 12]))
def test_pack_unpack_round_trip(text: str, header_len: int) -> None:
    header = bytes([header_len - 1]) + bytes(range(1, header_len)) if header_len else b""
    septets = gsm7.encode_septets(text)
    packed = gsm7.pack_septets(septets, header)
    udl = (gsm7.header_septets(header_len) if header_len else 0) + len(septets)
    assert len(packed) == (udl * 7 + 7) // 8
    assert packed[:header_len] == header
    assert gsm7.decode_septets(gsm7.unpack_septets(packed, udl, header_len)) == text
    assert gsm7.count_septets(text) == len(septets)


def test_unpack_too_short() -> None:
    with pytest.raises(ValueError, match="need 7 octets"):
        gsm7.unpack_septets(b"\x00" * 6, 8)
