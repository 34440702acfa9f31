from textback.numbers import clean_caller_id, is_withheld_number, normalise_caller, to_e164


def test_withheld_tokens() -> None:
    for raw in ["anonymous", "Anonymous", " ", "", None, "Restricted", "PRIVATE", "<unknown>"]:
        assert is_withheld_number(raw)
    assert not is_withheld_number("+15551230001")


def test_hostile_caller_id_is_cleaned() -> None:
    assert clean_caller_id("+1555\r\nAT+CMGS=1\x1a\x1b;") == "+15551"
    assert clean_caller_id("\u202e+1555123\u200b0001") == "+15551230001"
    assert clean_caller_id("1+2+3") == "123"
    assert clean_caller_id("9" * 200) == "9" * 32


def test_e164() -> None:
    assert to_e164("+15551230001") == "+15551230001"
    assert to_e164("(202) 555-0123", "US") == "+12025550123"
    assert to_e164("0044 7700 900123") == "+447700900123"
    assert to_e164("102") is None
    assert normalise_caller("102") == "102"
    assert normalise_caller("anonymous") is None
