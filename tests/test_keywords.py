"""Keyword classifier table: real-world phrasings, both ways, with the source of each.

Sources (SRC keys):
  FCC    FCC 24-24 (Report and Order, CG Docket 02-278) / 47 CFR 64.1200(a)(12): per-se
         revocation words stop, quit, end, revoke, opt out, cancel, unsubscribe, and the
         reasonable-person test for other wording.
  TWILIO twilio.com/docs/messaging/tutorials/advanced-opt-out: default opt-out STOP,
         UNSUBSCRIBE, END, QUIT, STOPALL, REVOKE, OPTOUT, CANCEL; opt-in START, YES, UNSTOP.
  TWES   twilio.com/help/faq/short-codes/
         what-are-the-requirements-for-a-spanish-language-short-code:
         Spanish ALTO (stop) and AYUDA (help).
  AWS    docs.aws.amazon.com/sms-voice/latest/userguide/opt-out-list-keywords.html: ARRET,
         CANCEL, END, OPT-OUT, OPTOUT, QUIT, REMOVE, STOP, TD, UNSUBSCRIBE.
  TELNYX developers.telnyx.com/docs/messaging/messages/advanced-opt-in-out: "STOP ALL".
  BRAZE  braze.com/docs (SMS opt-in/opt-out keywords): HELP, INFO; START, YES, UNSTOP.
  SAKARI support.sakari.io (carrier opt-out keywords): carriers ignore "Please Stop" /
         "CANCEL PLEASE"; the FCC test does not, so we count them.
  CP     compliancepoint.com (FCC consent revocation rule analysis): multi-word phrases,
         other languages ("No Mas").
  IOS    iPhone tapback sent to a non-iMessage phone arrives as text: 'Liked “…”',
         'Loved “…”', 'Emphasized “…”', 'Laughed at “…”', 'Questioned “…”'.
  GMSG   Google Messages reaction fallback: 'Reacted 👍 to "…"'.
  OWN    our own phrasing (what customers of a plumber / clinic / salon actually write).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textback.inbound.keywords import classify, is_urgent, normalise

FOOTER = "Sorry we missed your call - Example Plumbing. Reply STOP to opt out"

TABLE: list[tuple[str, str, str]] = [
    # --- per-se words, alone -------------------------------------------------------------
    ("STOP", "optout", "FCC"),
    ("stop", "optout", "FCC"),
    ("Stop", "optout", "FCC"),
    ("QUIT", "optout", "FCC"),
    ("End", "optout", "FCC"),
    ("REVOKE", "optout", "FCC"),
    ("opt out", "optout", "FCC"),
    ("Opt-Out", "optout", "AWS"),
    ("CANCEL", "optout", "FCC"),
    ("Unsubscribe", "optout", "FCC"),
    ("STOPALL", "optout", "TWILIO"),
    ("OPTOUT", "optout", "TWILIO"),
    ("STOP ALL", "optout", "TELNYX"),
    ("REMOVE", "optout", "AWS"),
    ("TD", "optout", "AWS"),
    ("ARRET", "optout", "AWS"),
    ("Arrêt", "optout", "AWS"),
    ("ALTO", "optout", "TWES"),
    ("No más", "optout", "CP"),
    # --- punctuation, emoji, quotes, whitespace, invisible characters ----------------------
    ("Stop!!!", "optout", "FCC"),
    ("STOP.", "optout", "FCC"),
    ("stop?", "optout", "OWN"),
    ("  stop  ", "optout", "FCC"),
    ("STOP 🛑", "optout", "OWN"),
    ("🛑🛑 stop 🛑🛑", "optout", "OWN"),
    ('"STOP"', "optout", "OWN"),
    ("“stop”", "optout", "OWN"),
    ("'Stop'", "optout", "OWN"),
    ("S\u200bTOP", "optout", "OWN"),          # zero-width space inside the word
    ("\ufeffSTOP", "optout", "OWN"),          # BOM
    ("stop\u200f", "optout", "OWN"),          # RTL mark
    ("\u00a0STOP\u00a0", "optout", "OWN"),    # NBSP
    ("ＳＴＯＰ", "optout", "OWN"),            # full-width (NFKC)
    ("stop\n", "optout", "OWN"),
    ("STOP STOP STOP", "optout", "OWN"),
    # --- short replies with filler -------------------------------------------------------
    ("Please stop", "optout", "SAKARI"),
    ("CANCEL PLEASE", "optout", "SAKARI"),
    ("stop please", "optout", "OWN"),
    ("Stop it", "optout", "OWN"),
    ("stop now!", "optout", "OWN"),
    ("Just stop.", "optout", "OWN"),
    ("I said STOP", "optout", "OWN"),
    ("ok stop", "optout", "OWN"),
    ("unsubscribe me", "optout", "OWN"),
    ("remove me", "optout", "OWN"),
    ("opt me out", "optout", "OWN"),
    ("STOP. Who is this?", "optout", "OWN"),
    ("Stop! Don't text me", "optout", "OWN"),
    ("HELP STOP", "optout", "OWN"),           # opt-out beats help
    ("stop help", "optout", "OWN"),
    ("How do I unsubscribe?", "optout", "FCC"),
    ("I want to opt out of these texts", "optout", "FCC"),
    ("I revoke my consent", "optout", "FCC"),
    # --- plain-language revocations (reasonable-person test) ------------------------------
    ("Please stop texting me", "optout", "FCC"),
    ("take me off your list", "optout", "FCC"),
    ("Take me off your list please", "optout", "FCC"),
    ("don't text me again", "optout", "CP"),
    ("Do not text this number", "optout", "CP"),
    ("dont message me anymore", "optout", "CP"),
    ("Remove my number", "optout", "CP"),
    ("please remove my number from your list", "optout", "CP"),
    ("Delete my number", "optout", "OWN"),
    ("leave me alone", "optout", "OWN"),
    ("Stop sending me these messages", "optout", "OWN"),
    ("quit messaging me", "optout", "OWN"),
    ("no more texts please", "optout", "OWN"),
    ("Never contact me again", "optout", "OWN"),
    ("stop calling me", "optout", "OWN"),
    ("I don't want any more texts", "optout", "OWN"),
    ("Cancel my subscription", "optout", "OWN"),
    ("wrong number", "optout", "OWN"),
    ("Not interested", "optout", "OWN"),
    ("Go away", "optout", "OWN"),
    ("Stop spamming me", "optout", "OWN"),
    ("Don't text me, call me", "optout", "OWN"),
    ("I'd like to be removed", "optout", "OWN"),
    # --- the words in another sense: a conversation ----------------------------------------
    ("don't stop by", "none", "OWN"),
    ("Can you end the appointment earlier?", "none", "OWN"),
    ("stopping by at 5", "none", "OWN"),
    ("I'll stop by at 5", "none", "OWN"),
    ("I'll cancel my 3pm and come at 4", "none", "OWN"),
    ("I need to cancel my appointment", "none", "OWN"),
    ("Can I cancel my appointment tomorrow and rebook for Friday?", "none", "OWN"),
    ("Cancel my 3pm please, I'll call to rebook", "none", "OWN"),
    ("When do you stop serving breakfast?", "none", "OWN"),
    ("What time do you end today?", "none", "OWN"),
    ("Please don't cancel my appointment", "none", "OWN"),
    ("The pipe won't stop dripping", "none", "OWN"),
    ("Don't text me back yet, I'm driving", "none", "OWN"),
    ("You never text me back", "none", "OWN"),
    ("Please call me back", "none", "OWN"),
    ("Can you text me the address?", "none", "OWN"),
    ("Can you come by Tuesday to fix the sink?", "none", "OWN"),
    ("Book me in for a cleaning", "none", "OWN"),
    ("Don't call me back, text me instead", "none", "OWN"),
    ("bus stop on main st", "none", "OWN"),
    ("Weekend works", "none", "OWN"),
    ("no thanks, all sorted", "none", "OWN"),
    ("No", "none", "OWN"),
    ("", "none", "OWN"),
    ("🙂", "none", "OWN"),
    # --- our footer quoted back by a phone's reaction -------------------------------------
    (f"Liked “{FOOTER}”", "none", "IOS"),
    (f"Loved “{FOOTER}”", "none", "IOS"),
    (f'Emphasized "{FOOTER}"', "none", "IOS"),
    (f"Questioned “{FOOTER}”", "none", "IOS"),
    (f'Reacted 👍 to "{FOOTER}"', "none", "GMSG"),
    ("Reply STOP to opt out", "none", "OWN"),    # footer pasted back alone
    (f'What is this? "{FOOTER}"', "none", "OWN"),
    # --- opt-in ---------------------------------------------------------------------------
    ("START", "optin", "TWILIO"),
    ("start", "optin", "TWILIO"),
    ("UNSTOP", "optin", "TWILIO"),
    ("Yes", "optin", "TWILIO"),
    ("YES!", "optin", "BRAZE"),
    ("yes please", "optin", "OWN"),
    ("Yes I called about the leak", "none", "OWN"),
    ("yes, tuesday at 10 works for me", "none", "OWN"),
    ("Start the job whenever", "none", "OWN"),
    # --- help -----------------------------------------------------------------------------
    ("HELP", "help", "BRAZE"),
    ("help", "help", "BRAZE"),
    ("Help?", "help", "OWN"),
    ("INFO", "help", "BRAZE"),
    ("info please", "help", "OWN"),
    ("AYUDA", "help", "TWES"),
    ("help my basement is flooding", "none", "OWN"),
    ("HELP!!! water is pouring through the ceiling", "none", "OWN"),
    ("Can you help me with a quote for a new boiler?", "none", "OWN"),
    ("more info on the price please", "none", "OWN"),
]


def test_table_is_large_and_covers_both_ways() -> None:
    classes = [c for _, c, _ in TABLE]
    assert len(TABLE) >= 80
    assert classes.count("optout") >= 30 and classes.count("none") >= 30
    assert {"optin", "help"} <= set(classes)
    texts = [t for t, _, _ in TABLE]
    assert len(texts) == len(set(texts)), "duplicate rows in the table"


@pytest.mark.parametrize(("text", "expected", "source"), TABLE,
                         ids=[f"{i:03d}-{s}" for i, (_, _, s) in enumerate(TABLE)])
def test_classify(text: str, expected: str, source: str) -> None:
    assert classify(text) == expected, f"{text!r} (source {source})"


@pytest.mark.parametrize("text", ["help my basement is flooding", "Urgent: leak under sink",
                                  "HELP!!! water is pouring through the ceiling, pipe burst",
                                  "EMERGENCY no heat"])
def test_urgent_pleas(text: str) -> None:
    assert classify(text) == "none"
    assert is_urgent(text)


@pytest.mark.parametrize("text", ["HELP", "help", "Can I book a cleaning?", "STOP"])
def test_not_urgent(text: str) -> None:
    assert not is_urgent(text)


def test_urgent_words_are_configurable() -> None:
    assert is_urgent("the toilet is overflowing", ["overflowing"])
    assert not is_urgent("the toilet is overflowing", ["flood"])
    assert is_urgent("NO  HEAT since last night", ["no heat"])


def test_normalise_removes_invisible_and_folds_case() -> None:
    assert normalise("\ufeffS\u200bT\u2060OP\u00a0 please\u200e") == "stop please"
    assert normalise("“Stop”") == '"stop"'


@pytest.mark.parametrize("pad", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e",
                                 "\u200f", "\u202a", "\u202e", "\u2066", "\u00ad"])
def test_every_invisible_character_is_ignored(pad: str) -> None:
    assert classify(f"{pad}S{pad}T{pad}O{pad}P{pad}") == "optout"
    assert classify(f"don't{pad} stop by") == "none"


# -- properties ------------------------------------------------------------------------------

_INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e",
                              "\u200f", "\u00a0", " ", "\t"])
_PUNCT = st.sampled_from(["", "!", "!!!", ".", "?", " 🛑", " 🙏", '"', "'", "…"])


@settings(max_examples=200, deadline=None)
@given(word=st.sampled_from(["stop", "quit", "end", "revoke", "opt out", "cancel",
                             "unsubscribe", "stopall", "optout"]),
       case=st.sampled_from([str.lower, str.upper, str.title]),
       pad=st.lists(_INVISIBLE, max_size=3), punct=_PUNCT,
       polite=st.sampled_from(["", "please ", "pls ", "ok "]))
def test_per_se_words_survive_any_dressing(word: str, case: object, pad: list[str],
                                           punct: str, polite: str) -> None:
    text = "".join(pad) + polite + case(word) + punct + "".join(pad)  # type: ignore[operator]
    assert classify(text) == "optout", repr(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_classify_never_fails_and_is_a_class(text: str) -> None:
    assert classify(text) in {"optout", "optin", "help", "none", "possible-optout"}
    assert isinstance(is_urgent(text), bool)


def test_long_ten_part_message_is_fine() -> None:
    body = "We need someone to look at the boiler, it keeps making a noise. " * 25
    assert classify(body) == "none"
    assert classify(body + "\nSTOP") == "optout"
    assert classify("x" * 100_000) == "none"
