"""Issue 14: opt-out recognition that generalises, scored on two sets.

* ``tests/data/optout_table.tsv``: the families of issue 14 and their mirror traps, one row
  per reply (text as a JSON string, class, the rule it tests, its source). It must pass
  whole. Source keys: FCC (FCC 24-24 / 47 CFR 64.1200(a)(12): per-se words and the
  reasonable-person test), TWILIO (twilio.com/docs/messaging/tutorials/advanced-opt-out),
  TWES (Twilio Spanish short codes: ALTO, AYUDA), AWS (docs.aws.amazon.com/sms-voice/latest/
  userguide/opt-out-list-keywords.html: ARRET, REMOVE, TD, ...), CWTA (Canadian Wireless
  Telecommunications Association, Common Short Code Application Guidelines: French ARRÊT and
  AIDE alongside STOP and HELP), BRAZE (SMS keyword docs: HELP, INFO), SAKARI (carriers vs
  "Please Stop"), IOS / GMSG (reaction fallbacks), OWN (what customers of a trade write),
  "issue 14" (the family or trap the issue names).
* ``tests/data/optout_independent.jsonl``: 100 replies to a "Sorry we missed your call …
  Reply STOP to opt out" text, written before any rule of this change (commit "tests: 100
  customer replies written independently …"). Today's classifier (1bc2fa0) scored 78/100
  on it; this change reaches 100/100. The test keeps the score from regressing.
* ``tests/data/optout_fresh.jsonl``: 40 more replies written after the rules, as a check on
  how far they generalise beyond what they were built from: 1bc2fa0 scored 34/40, the rules
  as they were 36/40; two fixes it prompted (contact verbs abbreviated as "msging",
  "textin"; a reply spelt out letter by letter) make 38/40. Still missed, on purpose: a
  Spanish plain-language revocation ("no me manden mas mensajes") and the French imperative
  "Arrete" (only carrier-documented non-English words are per-se words here).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from textback.inbound.keywords import CLASSES, TYPO_MAX_DISTANCE, classify, typo_of
from textback.inbound.reply_text import collapse_runs, damerau_levenshtein, prepare, strip_signature

DATA = Path(__file__).resolve().parent / "data"
SCORE_BEFORE = 78     # 1bc2fa0's classifier on the independent set
SCORE_REACHED = 100   # this change; must not regress


def load_table() -> list[tuple[str, str, str, str]]:
    rows = []
    for n, line in enumerate((DATA / "optout_table.tsv").read_text("utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        text, cls, rule, source = line.split("\t")
        rows.append((json.loads(text), cls, rule, source))
        assert cls in CLASSES, f"line {n}: unknown class {cls!r}"
    return rows


def load_independent() -> list[tuple[str, str]]:
    lines = (DATA / "optout_independent.jsonl").read_text("utf-8").splitlines()
    return [(r["text"], r["class"]) for r in map(json.loads, lines)]


def test_table_is_large_with_every_family_and_its_traps() -> None:
    rows = load_table()
    assert len(rows) >= 300
    assert len({t for t, *_ in rows}) == len(rows), "duplicate rows"
    assert all(rule and source for _, _, rule, source in rows)
    families = Counter(rule.split(":")[0] for _, _, rule, _ in rows)
    for family in ("signature", "courtesy", "typo", "French", "plain language", "object scope",
                   "compound / idiom", "help", "resume", "possible-optout", "reaction"):
        assert families[family] >= 5, (family, families)
    for mirror in ("signature mirror", "courtesy mirror", "typo mirror", "French mirror",
                   "plain-language mirror", "help mirror", "resume mirror",
                   "possible-optout mirror"):
        assert families[mirror] >= 2, (mirror, families)


def test_table_passes_whole() -> None:
    wrong = [(text, cls, classify(text), rule) for text, cls, rule, _ in load_table()
             if classify(text) != cls]
    assert wrong == []


def test_independent_set_does_not_regress() -> None:
    rows = load_independent()
    assert len(rows) == 100
    score = sum(classify(text) == cls for text, cls in rows)
    assert score >= SCORE_REACHED, [(t, c, classify(t)) for t, c in rows if classify(t) != c]
    assert SCORE_REACHED > SCORE_BEFORE


def test_fresh_set_written_after_the_rules() -> None:
    lines = (DATA / "optout_fresh.jsonl").read_text("utf-8").splitlines()
    rows = [(r["text"], r["class"]) for r in map(json.loads, lines)]
    assert len(rows) == 40
    assert sum(classify(text) == cls for text, cls in rows) >= 38


# -- the reduction step ----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "kept"), [
    ("stop\n\nsent from my iphone", "stop"),
    ("stop\nenviado desde mi iphone", "stop"),
    ("stop\nenvoyé de mon iphone", "stop"),
    ("stop\n--\njohn smith\nsmith roofing llc", "stop"),
    ("call me\nget outlook for android", "call me"),
    ("stop sent from my phone", "stop sent from my phone"),   # no line break: their words
    ("sent from my iphone", "sent from my iphone"),            # first line is never cut
    ("stop\nregards,\nbob", "stop"),
])
def test_signature_is_cut_only_after_a_line_break(raw: str, kept: str) -> None:
    assert strip_signature(raw) == kept


def test_prepare_reduces_in_order() -> None:
    r = prepare("\ufeffARR\u200bÊTER, s’il vous plaît\n\nEnvoyé de mon iPhone")
    assert r.words == ("arreter", "sil", "vous", "plait")
    assert prepare('Liked “Reply STOP to opt out”').reaction
    assert prepare("🛑").symbols == "🛑" and prepare("🛑").words == ()


def test_edit_distance_is_damerau_levenshtein() -> None:
    assert damerau_levenshtein("stpo", "stop") == 1       # transposition
    assert damerau_levenshtein("stip", "stop") == 1       # substitution
    assert damerau_levenshtein("sto", "stop") == 1        # deletion
    assert damerau_levenshtein("stopx", "stop") == 1      # insertion
    assert damerau_levenshtein("spot", "stop") == 2
    assert damerau_levenshtein("", "end") == 3
    assert collapse_runs("stooooopp") == "stop"
    assert TYPO_MAX_DISTANCE == 1


def test_typo_tolerance_is_limited_to_short_replies_and_five_words() -> None:
    assert typo_of("stpo") == "stop" and typo_of("qiut") == "quit"
    assert typo_of("cancle") == "cancel" and typo_of("unsubscibe") == "unsubscribe"
    assert typo_of("endd") == "end" and typo_of("and") is None and typo_of("top") is None
    assert typo_of("revok") is None            # only STOP/QUIT/END/CANCEL/UNSUBSCRIBE
    assert classify("Stpo") == "optout"
    assert classify("Stpo please") == "optout"
    assert classify("stpo the car at the gate please") == "none"   # long: no typo reading


def test_possible_optout_is_a_class_of_its_own() -> None:
    assert classify("🛑") == "possible-optout"
    assert classify("you need to stop") == "possible-optout"
    assert classify("you need to stop texting me") == "optout"
    assert classify("you need to stop by") == "none"
