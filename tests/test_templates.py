"""Templates: safe rendering, placeholder checks, choice by period, default fits one part."""

from __future__ import annotations

import pytest

from textback.outbound.templates import (
    DEFAULT_TEMPLATES,
    TemplateError,
    check_template,
    choose,
    clean_value,
    render,
    segment_plan,
)

VALUES = {"business": "Acme Plumbing", "callback": "+15559870000", "caller": "+15551230001",
          "booking_url": "https://acme.example/b", "reason": "our line was busy"}


def test_render_fills_known_placeholders() -> None:
    assert render("Hi from {business}, call {callback}", VALUES) == \
        "Hi from Acme Plumbing, call +15559870000"
    assert render("Literal {{braces}} {business}", VALUES) == "Literal {braces} Acme Plumbing"
    assert render("Book: {booking_url}", {}) == "Book:"


@pytest.mark.parametrize("hostile", [
    "Acme\r\nAT+CMGS=1\x1a", "Acme\x1b[31m", "Acme\u202eevil", "Acme\u2028x", "Acme\x00",
])
def test_values_cannot_inject_control_characters(hostile: str) -> None:
    out = render("{business}!", {"business": hostile})
    assert not any(c in out for c in "\r\n\x1a\x1b\u202e\u2028\x00"), repr(out)
    assert out.startswith("Acme")


def test_value_text_is_never_reinterpreted() -> None:
    assert render("{business}", {"business": "{caller} {0.__class__}"}) == \
        "{caller} {0.__class__}"


@pytest.mark.parametrize(("template", "problem"), [
    ("Hi {name}", "unknown field {name}"),
    ("Hi {business.__class__}", "not allowed"),
    ("Hi {business!r}", "not allowed"),
    ("Hi {business:>99}", "not allowed"),
    ("Hi {0}", "not allowed"),
    ("Hi {business", "broken braces"),
])
def test_bad_templates(template: str, problem: str) -> None:
    problems = check_template(template)
    assert problems and problem in problems[0]
    with pytest.raises(TemplateError):
        render(template, VALUES)


def test_clean_value_collapses_whitespace() -> None:
    assert clean_value("  Acme \t\n Plumbing  ") == "Acme Plumbing"
    assert len(clean_value("x" * 1000)) == 200


def test_choose_by_period_and_voicemail() -> None:
    configured = {"business_hours": "B", "after_hours": "A", "holiday": None,
                  "voicemail_left": "V"}
    assert choose(configured, "business_hours", False).text == "B"
    assert choose(configured, "after_hours", False).text == "A"
    assert choose(configured, "holiday", False).kind == "after_hours"  # falls back
    assert choose(configured, "holiday", True).text == "V"
    default = choose({}, "holiday", False)
    assert default.is_default and default.text == DEFAULT_TEMPLATES["holiday"]


@pytest.mark.parametrize("kind", list(DEFAULT_TEMPLATES))
def test_defaults_fit_one_gsm7_part_and_say_how_to_opt_out(kind: str) -> None:
    text = render(DEFAULT_TEMPLATES[kind], {**VALUES, "business": "B" * 40})  # type: ignore[index]
    assert "Reply STOP to opt out" in text and "B" * 40 in text
    plan = segment_plan(text)
    assert plan is not None and plan.encoding == "gsm7" and len(plan.parts) == 1


def test_segment_plan_names_the_emoji() -> None:
    plan = segment_plan("Sorry we missed you \U0001F600")
    assert plan is not None and plan.encoding == "ucs2" and "\U0001F600" in plan.offending
