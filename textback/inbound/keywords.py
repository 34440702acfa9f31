"""What an inbound text asks for: opt out, opt back in, the canned help, or nothing special.

The daemon and ``textback keywords classify`` call :func:`classify` on every inbound text.
A missed opt-out is a TCPA violation (FCC 24-24, 47 CFR 64.1200(a)(12), in force since
2025-04-11); a false one silences a customer who wanted a callback. So the rules are:

* The FCC's per-se revocation words (stop, quit, end, revoke, opt out, cancel, unsubscribe)
  and the carriers' (stopall, optout, remove, ...) count when the reply *is* the word, give or
  take case, punctuation, emoji, quotes, politeness ("stop please", "STOP!!! 🛑") and
  invisible characters (zero-width, NBSP, BOM, bidi marks are removed after NFKC).
* Beyond the words, the FCC asks whether a reasonable person would read the reply as revoking
  consent: plain-language phrases ("please stop texting me", "take me off your list", "don't
  text me again") are matched by :data:`_REVOCATION_PATTERNS`.
* The words inside a conversation are not revocations: "don't stop by", "can you end the
  appointment earlier", "I'll cancel my 3pm and come at 4" ask the business to do something.
  Our own footer quoted back by a phone's reaction ('Liked "… Reply STOP to opt out"') is
  not a revocation either: the quoted part is removed before anything else looks at it.
* Opt-out beats help; help is only the bare word (HELP / INFO), because "help, my basement is
  flooding" is a plea for a person: it is "none" and :func:`is_urgent` flags it for staff.
* Opt-in (START / UNSTOP / YES) is only the bare word: "yes" inside a sentence is an answer.

Non-English words are only those a carrier or major provider documents (sources in
tests/test_keywords.py): ARRET (French, AWS), ALTO / AYUDA (Spanish, Twilio short-code rules).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

KeywordClass = Literal["optout", "optin", "help", "none"]

# Words that alone (with only filler around them) are a revocation. Per-se FCC words, then
# carrier/provider words (Twilio: stopall, optout, revoke; AWS: remove, td, arret;
# Twilio Spanish short codes: alto; CompliancePoint's FCC analysis: "no mas").
OPTOUT_WORDS = frozenset(
    {
        "stop", "quit", "end", "revoke", "cancel", "unsubscribe", "stopall", "optout",
        "remove", "arret", "alto", "td", "unsub", "unsuscribe", "unsubscribed",
    }
)
# Multi-word forms of the same (matched on the token sequence).
OPTOUT_PHRASES = (
    ("opt", "out"), ("stop", "all"), ("no", "mas"), ("opt", "me", "out"),
    ("remove", "me"), ("unsubscribe", "me"), ("end", "all"), ("cancel", "all"),
)
# Words unambiguous enough to revoke anywhere in a message (not as substrings).
_ANYWHERE_OPTOUT = re.compile(
    r"\b(?:unsubscribe|unsubscribed|stopall|optout|opt[ -]?me[ -]?out|opt[ -]out|"
    r"revoke(?: my)?(?: consent)?)\b"
)

OPTIN_WORDS = frozenset({"start", "unstop", "yes", "subscribe", "resume"})
HELP_WORDS = frozenset({"help", "info", "ayuda"})

# Filler that may surround a bare keyword without changing what it means.
_FILLER = frozenset(
    {
        "please", "pls", "plz", "plse", "now", "thanks", "thank", "you", "thx", "ty",
        "it", "this", "that", "these", "them", "ok", "okay", "sorry", "just", "right",
        "asap", "immediately", "already", "again", "all", "me", "oh", "hi", "hello",
        "hey", "sir", "maam", "the", "texts", "text", "messages", "message", "msgs", "sms",
        "yes", "no", "god", "dammit", "damn", "seriously", "really", "kindly", "omg",
        "bro", "dude", "man", "lol", "fucking", "fking", "freaking", "for", "real",
        "i", "said", "ffs",
    }
)
# Per-se words that also name everyday actions: only revocations when they are the whole
# message (with filler), never as one sentence among others ("Cancel. I'll come at 4").
_WHOLE_MESSAGE_ONLY = frozenset({"cancel", "end", "remove", "td", "alto"})

_CONTACT = (
    r"(?:text|texting|texted|txt|txting|texts|message|messages|messaging|msg|msgs|sms|"
    r"contact|contacting|send(?:ing)?(?: me)?(?: any)?(?: more)?(?: texts| messages)?|"
    r"bother|bothering|spam|spamming|harass|harassing|call|calling|ring|ringing|hit me up)"
)
# "Don't text me back yet" / "don't text me until Monday" are about timing, not consent.
_NOT_LATER = (r"(?!(?:\s+me)?\s+(?:back|yet|until|till|before|after|while|at|on|tonight|"
              r"today|tomorrow|right now|now|during)\b)")
# Plain-language revocations (the FCC's reasonable-person test). Matched on the normalised,
# accent-stripped, lower-case text with punctuation turned into spaces.
_REVOCATION_PATTERNS = tuple(
    re.compile(p)
    for p in (
        rf"\b(?:stop|quit|cease|halt)\s+(?:\w+\s+){{0,2}}?{_CONTACT}\b",
        rf"\b(?:do not|dont)\s+(?:\w+\s+){{0,2}}?"
        rf"(?:text|txt|message|msg|sms|contact|spam|bother|harass)\w*\b{_NOT_LATER}",
        r"\bnever\s+(?:\w+\s+){0,2}?(?:text|txt|message|msg|sms|contact|call)\w*\s+"
        r"(?:me|this number|us)\s+(?:again|anymore|ever)\b",
        r"\b(?:cancel|end)\s+(?:\w+\s+){0,2}?(?:texts?|messages?|texting|messaging|"
        r"subscription|alerts?|notifications?|sms)\b",
        r"\bdon'?t\s+(?:ever\s+)?(?:call|ring)\s+(?:me|this number)\s+(?:again|anymore|ever)\b",
        r"\bno\s+(?:more|further)\s+(?:texts?|txts?|messages?|msgs?|sms|contact|calls?)\b",
        r"\b(?:take|remove|delete|drop|erase|scratch)\s+(?:me|my\s+(?:number|name|cell|phone)"
        r"(?:\s+number)?|this\s+number)\s+(?:off|from|out of)\b",
        r"\b(?:remove|delete|erase|lose|forget)\s+(?:me|my\s+(?:number|info|contact|details|"
        r"cell|phone)(?:\s+number)?|this\s+number)\b",
        r"\b(?:leave|let)\s+me\s+alone\b",
        r"\bgo\s+away\b",
        r"\bnot\s+interested\b",
        r"\bwrong\s+(?:number|person|guy|girl)\b",
        r"\b(?:(?:i|we)\s+(?:want|wanna|would like|need)|id like|wed like)\s+(?:to\s+)?(?:be\s+)?"
        r"(?:removed|unsubscribed|opted out|off (?:your|the|this) list)\b",
        r"\boff\s+(?:your|the|this|ur)\s+(?:\w+\s+)?list\b",
        r"\b(?:do not|dont|don't)\s+(?:\w+\s+)?(?:want|need)\s+(?:any\s+|your\s+|these\s+)?"
        r"(?:more\s+)?(?:texts?|messages?|msgs?)\b",
        r"\bi\s+(?:withdraw|revoke)\b",
        r"\bwithdraw\s+(?:my\s+)?consent\b",
    )
)

# A phone's reaction to our own message: 'Liked "…"', 'Loved “…”', 'Reacted 👍 to "…"'.
_REACTION = re.compile(
    r"^\s*(?:liked|loved|disliked|laughed at|emphasized|emphasised|questioned|"
    r"reacted\b.{0,12}?\bto|removed an? .{0,20}?from|👍|❤️|😂|‼️|❓|👎)\s*[\"'«]",
    re.IGNORECASE,
)
# Our footer (or any "Reply STOP to …" instruction) quoted or pasted back.
_FOOTER = re.compile(
    r"\b(?:reply|text|txt|send|respond(?: with)?)\s+[\"']?(?:stop|end|quit|help|start)"
    r"[\"']?\s+(?:to|for)\s+(?:opt\s*-?\s*out|unsubscribe|stop|end|cancel|quit|help|"
    r"opt\s*-?\s*in|resubscribe|more info|info)\w*\b"
    r"(?:\s*(?:and|or|,)\s*(?:reply\s+)?(?:help|start)\s+(?:for|to)\s+\w+)?",
)
_QUOTED = re.compile(r"\"[^\"]*\"")

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'", "`": "'",
    }
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_SENTENCE_SPLIT = re.compile(r"[.!?;,\n:()\-]+|\s-\s")

# Default escalation words for trades and clinics; the daemon takes them from the config.
DEFAULT_URGENT_WORDS = ("emergency", "urgent", "urgently", "asap", "flood", "flooding",
                        "flooded", "leak", "leaking", "fire", "smoke", "gas leak", "smell gas",
                        "burst", "sewage", "overflowing", "carbon monoxide", "no heat",
                        "no hot water", "no power", "sparking", "911")


def normalise(text: str) -> str:
    """NFKC, invisible characters (Unicode category Cf) removed, quotes straightened,
    case folded, whitespace collapsed. Accents are kept (see :func:`_fold_accents`)."""
    s = unicodedata.normalize("NFKC", text)
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Cf")
    s = s.translate(_QUOTES).casefold()
    return " ".join(s.split())


def _fold_accents(s: str) -> str:
    """'arrêt' → 'arret', 'más' → 'mas': people type keywords with or without accents."""
    decomposed = unicodedata.normalize("NFD", s)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def _strip_quoted_footer(s: str) -> str | None:
    """The message without our footer / quoted reaction; None when nothing of the sender's
    own is left (a pure reaction to our message)."""
    if _REACTION.match(s):
        return None
    s = _FOOTER.sub(" ", s)
    # A quoted passage that contained our footer is someone quoting us: drop all quotes
    # that mention the footer's words.
    s = _QUOTED.sub(lambda m: " " if re.search(r"\bstop\b|missed your call", m.group(0))
                    and len(m.group(0)) > 12 else m.group(0), s)
    return s


def _tokens(s: str) -> list[str]:
    return [t.replace("'", "") for t in _WORD.findall(s)]


def _strip_filler(tokens: Iterable[str]) -> list[str]:
    return [t for t in tokens if t not in _FILLER]


def _collapse(tokens: list[str]) -> list[str]:
    """Repeated keywords ("stop stop stop") count once; multi-word forms become one token."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for phrase in OPTOUT_PHRASES:
            n = len(phrase)
            if tuple(tokens[i:i + n]) == phrase:
                out.append("optout")
                i += n
                break
        else:
            out.append(tokens[i])
            i += 1
    deduped: list[str] = []
    for t in out:
        if not deduped or deduped[-1] != t:
            deduped.append(t)
    return deduped


def _bare_keywords(tokens: list[str], vocabulary: frozenset[str]) -> bool:
    """True when the tokens are only keywords of ``vocabulary`` plus filler."""
    core = _strip_filler(_collapse(tokens))
    if not core:
        # "Stop it" → core ['stop'] ; but "yes" / "it" alone are filler: look again without
        # removing filler words that are themselves keywords of this vocabulary.
        core = [t for t in _collapse(tokens) if t in vocabulary]
    return bool(core) and all(t in vocabulary for t in core)


def _is_optout(folded: str) -> bool:
    words = _tokens(folded)
    if not words:
        return False
    optout_vocab = OPTOUT_WORDS | {"optout"}
    # Only keywords (of any class) and filler, at least one of them an opt-out word:
    # "STOP", "stop please", "HELP STOP" (opt-out beats help), "yes stop".
    core = _strip_filler(_collapse(words)) or [t for t in _collapse(words) if t in optout_vocab]
    if core and any(t in optout_vocab for t in core) and all(
        t in optout_vocab or t in HELP_WORDS or t in OPTIN_WORDS for t in core
    ):
        return True
    if _ANYWHERE_OPTOUT.search(folded):
        return True
    spaced = " ".join(words)
    if any(p.search(spaced) for p in _REVOCATION_PATTERNS):
        return True
    # One sentence among others that is a bare revocation word: "STOP. Who is this?"
    sentences = [_tokens(part) for part in _SENTENCE_SPLIT.split(folded)]
    sentences = [t for t in sentences if t]
    if len(sentences) > 1:
        strong = optout_vocab - _WHOLE_MESSAGE_ONLY
        for toks in sentences:
            if _bare_keywords(toks, strong):
                return True
    return False


def classify(text: str) -> KeywordClass:
    """"optout", "optin", "help" or "none" for one inbound text (see the module docstring)."""
    s = normalise(text)
    if not s:
        return "none"
    own = _strip_quoted_footer(s)
    if own is None:
        return "none"
    folded = _fold_accents(own)
    if _is_optout(folded):
        return "optout"
    words = _tokens(folded)
    if not words:
        return "none"
    if len(words) <= 4 and _bare_keywords(words, OPTIN_WORDS):
        return "optin"
    if len(words) <= 4 and _bare_keywords(words, HELP_WORDS):
        return "help"
    return "none"


def is_urgent(text: str, words: Iterable[str] = DEFAULT_URGENT_WORDS) -> bool:
    """True when the text contains one of the configured urgent words or phrases (as whole
    words, any case, accents and invisible characters ignored): staff are told at once, also
    outside business hours. A bare "HELP" is the canned help, not urgent."""
    folded = _fold_accents(normalise(text))
    spaced = " " + " ".join(_tokens(folded)) + " "
    if spaced.strip() in HELP_WORDS:
        return False
    for word in words:
        w = " ".join(_tokens(_fold_accents(normalise(word))))
        if w and f" {w} " in spaced:
            return True
    return False
