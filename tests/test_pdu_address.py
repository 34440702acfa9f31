"""TP addresses and the SMSC field (TS 23.040 §9.1.2.5): strict on encode, lenient on decode."""

from __future__ import annotations

import pytest

from textback.modem.pdu_address import (
    decode_address,
    decode_smsc,
    encode_address,
    encode_smsc,
    parse_number,
)
from textback.modem.pdu_error import PduError


def test_encode_international_national_and_smsc() -> None:
    assert encode_address("+34616585119").hex().upper() == "0B914316565811F9"
    assert encode_address("0126541234").hex().upper() == "0A811062452143"
    assert encode_smsc(None) == b"\x00"
    assert encode_smsc("+34646456456").hex().upper() == "07914346466554F6"


@pytest.mark.parametrize("number", ["+1 555", "+1555\r", "\x1b1555", "1555\x1a", "abc", "+",
                                    "", "1" * 21, "+" + "1" * 21, "12٣", "*21#"])
def test_encode_refuses_non_numbers(number: str) -> None:
    with pytest.raises(PduError, match="not a valid address"):
        parse_number(number)


def test_refusal_message_does_not_echo_control_characters() -> None:
    with pytest.raises(PduError) as info:
        parse_number("+1\r\nAT+CMGD=1,4\x1a")
    assert "\r" not in str(info.value) and "\x1a" not in str(info.value)


def test_decode_alphanumeric_and_special_digits() -> None:
    data = bytes.fromhex("0DD0F334FC1CA69701")
    assert decode_address(data, 0, "OA") == ("sipgate", 0xD0, 9)
    # the same name with the length counted in whole octets (14): no phantom '@'
    assert decode_address(bytes.fromhex("0ED0F334FC1CA69701"), 0, "OA")[0] == "sipgate"
    assert decode_address(bytes.fromhex("0ED0F334FC1CA697E1"), 0, "OA")[0] == "sipgatep"
    # 1010 '*', 1011 '#', F filler skipped (the broken ZTE recipient field)
    assert decode_address(bytes.fromhex("0F910B487228297020F5"), 0, "RA") == (
        "+#08427829207025", 0x91, 10)
    assert decode_address(bytes.fromhex("04812AC1"), 0, "OA")[0] == "*21a"
    assert decode_address(bytes.fromhex("0081"), 0, "OA") == (None, 0x81, 2)


def test_decode_smsc_forms() -> None:
    assert decode_smsc(bytes.fromhex("00")) == (None, 1)
    assert decode_smsc(bytes.fromhex("0181")) == (None, 2)
    assert decode_smsc(bytes.fromhex("0297F1")) == ("+1", 3)
    assert decode_smsc(bytes.fromhex("04A12143F5")) == ("12345", 5)
    with pytest.raises(PduError, match="says 7 octets"):
        decode_smsc(bytes.fromhex("0791"))
    with pytest.raises(PduError, match="truncated"):
        decode_address(bytes.fromhex("0B"), 0, "OA")
