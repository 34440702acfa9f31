"""A customer's reply reduced to what the customer wrote, as words the classifier can read.

Why a separate step: every opt-out miss the keyword list had (issue 14) came from text
*around* the word, not from the word: a phone's signature under "STOP", a reaction quoting
our own footer, an accent, an invisible character, a doubled letter. So the reply is first
reduced, always in the same order, and the rules in :mod:`textback.inbound.keywords` only ever see
the result:

1. NFKC (full-width and compatibility forms become plain letters), invisible characters
   (Unicode category Cf: zero-width, BOM, bidi marks, soft hyphen) removed, curly quotes
   straightened, case folded. Line breaks are kept for step 2.
2. Signatures and trailing boilerplate removed: from the first line (not the first) that
   starts a signature ("--", "Sent from my iPhone", "Enviado desde mi…", "Envoyé de mon…",
   "Get Outlook for…", a carrier's or app's footer, a "Regards," closing) to the end.
   Only after a line break: "stop sent from my phone" on one line is the customer's own.
3. A phone's reaction quoting our message ('Liked "…Reply STOP to opt out"') and our footer
   pasted back are removed (the behaviour :mod:`textback.inbound.keywords` always had).
4. Accents folded ('arrêt' → 'arret', 'más' → 'mas').
5. Tokenised into words (letters and digits; an inner apostrophe is dropped: "don't" →
   "dont") and into sentences (split at . ! ? ; , : line breaks and dashes).

Also here: the edit distance the typo tolerance uses (:func:`damerau_levenshtein`) and the
letter-run collapse (:func:`collapse_runs`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'", "`": "'",
    }
)

# A line that starts a signature or a device / mail / carrier footer (matched on the
# case-folded line, accents kept or folded: both spellings listed where they differ).
_SIGNATURE_LINE = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*\S*|_{3,}|"                                   # "-- " mail separator, rules
    r"sent (?:from|via|with|using|by) \S|"                 # Sent from my iPhone / via TextNow
    r"get outlook for\b|"
    r"enviado (?:desde|con|de) \S|"                        # Enviado desde mi iPhone
    r"envoy[ée] (?:de|depuis|avec|à partir de|a partir de) \S|"   # Envoyé de mon iPhone
    r"gesendet (?:von|mit) \S|"
    r"msg ?(?:&|and) ?data rates\b|"                       # carrier / app footers
    r"(?:this|the) (?:message|text) was sent (?:from|by|using|via)\b|"
    r"free msg\b|"
    r"(?:best |kind |warm )?regards,?\s*$|cheers,?\s*$|thanks,\s*$|"
    r"saludos,?\s*$|atentamente,?\s*$|cordialement,?\s*$|bien [àa] vous,?\s*$"
    r")"
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

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_SENTENCE_SPLIT = re.compile(r"[.!?;,\n:()\u2026]+|\s[-\u2013\u2014]+\s|\s[-\u2013\u2014]+$")

# Emoji that mean "stop" without a word: 🛑 stop sign, ⛔ no entry, 🚫 prohibited, ✋ raised hand.
STOP_EMOJI = frozenset({"\U0001f6d1", "\u26d4", "\U0001f6ab", "\u270b"})


def clean(text: str) -> str:
    """Step 1: NFKC, invisible characters removed, quotes straightened, case folded; line
    breaks kept (as "\\n"), other whitespace runs collapsed to one space per line."""
    s = unicodedata.normalize("NFKC", text)
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Cf")
    s = s.translate(_QUOTES).casefold()
    lines = (" ".join(line.split()) for line in s.replace("\r\n", "\n").replace("\r", "\n")
             .replace("\u2028", "\n").replace("\u2029", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def strip_signature(s: str) -> str:
    """Step 2: the lines before the first signature / footer line (never the first line)."""
    lines = s.split("\n")
    for i, line in enumerate(lines):
        if i > 0 and _SIGNATURE_LINE.match(line):
            return "\n".join(lines[:i]).rstrip()
    return s


def strip_reaction(s: str) -> str | None:
    """Step 3: the text without our footer / a quoted reaction; None when nothing of the
    sender's own is left (a pure reaction to our message)."""
    if _REACTION.match(s):
        return None
    s = _FOOTER.sub(" ", s)
    # A quoted passage that contains our footer's words is someone quoting us.
    return _QUOTED.sub(lambda m: " " if re.search(r"\bstop\b|missed your call", m.group(0))
                       and len(m.group(0)) > 12 else m.group(0), s)


def fold_accents(s: str) -> str:
    """Step 4: 'arrêt' → 'arret', 'más' → 'mas': people type keywords with or without."""
    decomposed = unicodedata.normalize("NFD", s)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn"))


def tokens(s: str) -> list[str]:
    """Step 5: the words, inner apostrophes dropped ("don't" → "dont"). A reply spelt out
    one letter at a time ("S T O P", "s.t.o.p") is one word."""
    words = [t.replace("'", "") for t in _WORD.findall(s)]
    if len(words) >= 3 and all(len(w) == 1 and w.isalpha() for w in words):
        return ["".join(words)]
    return words


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply after :func:`prepare`: ``text`` is the reduced one-line text, ``words`` its
    tokens, ``sentences`` the tokens of each sentence (empty ones dropped), ``symbols`` the
    characters that are neither letters, digits, punctuation nor spaces (emoji)."""

    text: str
    words: tuple[str, ...]
    sentences: tuple[tuple[str, ...], ...]
    symbols: str
    reaction: bool = False


def prepare(raw: str) -> Reply:
    """Steps 1-5 on one inbound text."""
    s = clean(raw)
    s = strip_signature(s)
    own = strip_reaction(s)
    if own is None:
        return Reply("", (), (), "", reaction=True)
    folded = fold_accents(own)
    sentences = tuple(tuple(t) for t in (tokens(p) for p in _SENTENCE_SPLIT.split(folded)) if t)
    symbols = "".join(ch for ch in folded
                      if unicodedata.category(ch)[0] == "S" or ch in STOP_EMOJI)
    return Reply(" ".join(folded.split()), tuple(tokens(folded)), sentences, symbols)


def collapse_runs(word: str) -> str:
    """'stooop' → 'stop', 'sttop' → 'stop': every run of one letter becomes one letter."""
    return re.sub(r"(.)\1+", r"\1", word)


def damerau_levenshtein(a: str, b: str) -> int:
    """Edit distance counting an insertion, a deletion, a substitution and a transposition
    of two neighbouring letters as one edit each (optimal string alignment distance)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]
