"""Encoding choice and minimal splitting (TS 23.040 §9.2.3.24.1)."""

from __future__ import annotations

import pytest

from textback.modem.pdu_error import PduError
from textback.modem.pdu_segment import PART_LIMIT, plan_segments, utf16_units


def test_limits() -> None:
    assert PART_LIMIT == {("gsm7", 8): 153, ("gsm7", 16): 152, ("ucs2", 8): 67, ("ucs2", 16): 66}
    assert [len(plan_segments("a" * n).parts) for n in (160, 161, 306, 307)] == [1, 2, 2, 3]
    assert [len(plan_segments("ж" * n).parts) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    assert len(plan_segments("a" * 304, ref_bits=16).parts) == 2
    assert len(plan_segments("a" * 305, ref_bits=16).parts) == 3


def test_escape_and_surrogate_pair_stay_whole() -> None:
    plan = plan_segments("a" * 152 + "€" + "b" * 10)
    assert plan.parts[0] == "a" * 152 and plan.parts[1].startswith("€")
    assert plan.units == 152 + 2 + 10
    plan = plan_segments("ж" * 66 + "😀" + "ж" * 10)
    assert plan.parts[0] == "ж" * 66 and plan.parts[1].startswith("😀")
    assert (plan.encoding, plan.units, plan.offending) == ("ucs2", 78, ["ж", "😀"])
    assert utf16_units("😀") == 2 and utf16_units("ж") == 1


def test_empty_text_is_one_empty_part() -> None:
    assert plan_segments("") == plan_segments("", 16)
    assert plan_segments("").parts == [""]


def test_refusals() -> None:
    with pytest.raises(PduError, match="ref_bits"):
        plan_segments("x", ref_bits=7)
    with pytest.raises(PduError, match="lone UTF-16 surrogate U\\+DC00 at index 1"):
        plan_segments("a\udc00")
