"""What an inbound text asks for: opt out, opt back in, the canned help, nothing special, or
a possible opt-out that no rule can settle and a person must decide.

The daemon and ``textback keywords classify`` call :func:`classify` on every inbound text.
A missed opt-out is a TCPA violation (FCC 24-24, 47 CFR 64.1200(a)(12), in force since
2025-04-11); a false one silences a customer who wanted a callback. The rules work on the
reply as :func:`textback.inbound.reply_text.prepare` reduces it (NFKC, invisible characters, case,
accents, a phone's signature or reaction removed, words and sentences), so they model a
reply rather than list spellings:

* **Per-se words by position and company.** The FCC's per-se revocation words (stop, quit,
  end, revoke, opt out, cancel, unsubscribe) and the carriers' (stopall, optout, remove, ...)
  count when the reply *is* the word, give or take punctuation, emoji and courtesy words in
  English, Spanish or French ("stop please", "STOP por favor", "Arrêt svp, merci"), or when
  one sentence among others is the bare word ("STOP. Who is this?").
* **Typos, narrowly.** In a short reply (at most :data:`TYPO_MAX_WORDS` words) whose only
  non-courtesy word is not a word of its own, a misspelling of STOP, QUIT, CANCEL or
  UNSUBSCRIBE counts when, after collapsing every run of one letter ("stoooop" → "stop"),
  its Damerau-Levenshtein distance to the word is at most :data:`TYPO_MAX_DISTANCE` (1: one
  transposition, substitution, insertion or deletion). END is too short for that (and, send,
  bend): only its doubled letters are forgiven. Real words at distance 1 ("top", "step",
  "shop", "quiet", "cancer") are never typos (:data:`_NOT_TYPOS`).
* **Plain language with negation and object scope.** Beyond the words the FCC asks whether
  a reasonable person would read the reply as revoking consent: "please stop texting me",
  "take me off your list", "don't reply to this number", "delete my details" are matched by
  :data:`_REVOCATION_PATTERNS`, one sentence at a time. A pattern under a negation ("please
  don't stop texting me", "don't delete my number") does not count, and one whose object is
  something other than our texts ("how do I opt out of the warranty plan", "I unsubscribed
  from your emails") does not either.
* **The words in another sense** are not revocations: "don't stop by", "can you end the
  appointment earlier", "I'll cancel my 3pm and come at 4", "the stop sign at the end of my
  street", "thanks for the help". Our own footer quoted back by a phone's reaction
  ('Liked "… Reply STOP to opt out"') is removed before anything looks at the reply.
* **possible-optout** is the class for what no rule settles: a per-se verb with no object
  in a sentence that is neither clearly about our texts nor clearly about something else
  ("you need to stop", "I want to cancel"), or a stop-sign emoji alone. The daemon sends
  nothing automatic to that number and asks staff (:mod:`textback.inbound.possible_optout`).
* Opt-out beats help; help is only the bare word (HELP / INFO and the carriers' Spanish and
  French AYUDA / AIDE), because "help, my basement is flooding" is a plea for a person: it is
  "none" and :func:`is_urgent` flags it for staff.
* Opt-in (START / UNSTOP / YES) is only the bare word, or an explicit request to resume our
  texts ("start texts again", "opt me back in"); the daemon acts on it only for a number
  that is opted out.

Non-English words are only those a carrier or major provider documents (sources in
tests/data/optout_table.tsv): ARRET / ARRÊT (French, AWS; CWTA short-code guidelines),
ARRETER (French, named by issue 14 as carrier-documented), ALTO / AYUDA (Spanish, Twilio
short-code rules), AIDE (French help, CWTA short-code guidelines).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from textback.inbound import reply_text
from textback.inbound.reply_text import Reply, collapse_runs, damerau_levenshtein, prepare

KeywordClass = Literal["optout", "optin", "help", "none", "possible-optout"]
CLASSES: tuple[KeywordClass, ...] = ("optout", "optin", "help", "none", "possible-optout")

# Words that alone (with only filler around them) are a revocation. Per-se FCC words, then
# carrier/provider words (Twilio: stopall, optout, revoke; AWS: remove, td, arret;
# Twilio Spanish short codes: alto; CompliancePoint's FCC analysis: "no mas"; French
# "arreter", issue 14).
OPTOUT_WORDS = frozenset(
    {
        "stop", "quit", "end", "revoke", "cancel", "unsubscribe", "stopall", "optout",
        "remove", "arret", "arreter", "alto", "td", "unsub", "unsuscribe", "unsubscribed",
    }
)
# Multi-word forms of the same (matched on the token sequence).
OPTOUT_PHRASES = (
    ("opt", "out"), ("stop", "all"), ("no", "mas"), ("opt", "me", "out"),
    ("remove", "me"), ("unsubscribe", "me"), ("end", "all"), ("cancel", "all"),
)

OPTIN_WORDS = frozenset({"start", "unstop", "yes", "subscribe", "resume", "resubscribe"})
HELP_WORDS = frozenset({"help", "info", "ayuda", "aide"})

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
        # Spanish courtesy words
        "por", "favor", "porfa", "porfavor", "gracias", "muchas", "hola", "ya", "senor",
        "senora", "mensajes", "textos",
        # French courtesy words ("s'il vous plaît" → sil vous plait)
        "merci", "beaucoup", "svp", "stp", "sil", "vous", "te", "plait", "bonjour", "salut",
        "madame", "monsieur", "les",
    }
)
# Per-se words that also name everyday actions: only revocations when they are the whole
# message (with filler), never as one sentence among others ("Cancel. I'll come at 4").
_WHOLE_MESSAGE_ONLY = frozenset({"cancel", "end", "remove", "td", "alto"})

# Typo tolerance (see the module docstring): only replies this short, only these words.
TYPO_MAX_WORDS = 3
TYPO_MAX_DISTANCE = 1
TYPO_TARGETS = ("stop", "quit", "cancel", "unsubscribe")
# Real words within distance 1 of a target: never read as a typo.
_NOT_TYPOS = frozenset({
    "top", "step", "shop", "stomp", "stow", "atop", "slop", "sop", "stoa", "swop", "strop",
    "stoep", "scop", "stor", "spot",
    "quiz", "suit", "quip", "quite", "quiet", "quilt", "quint", "quid", "quin", "qui",
    "cancer", "chancel",
})

_NEGATORS = frozenset({"dont", "not", "wont", "cant", "cannot", "didnt", "doesnt",
                       "wouldnt", "couldnt", "shouldnt", "isnt", "never", "aint", "without"})

_CONTACT = (
    r"(?:text|texting|texted|txt|txting|texts|message|messages|messaging|msg|msgs|msging|"
    r"msgin|messagin|textin|texing|sms|"
    r"contact|contacting|send(?:ing)?(?: me)?(?: any)?(?: more)?(?: texts| messages)?|"
    r"bother|bothering|spam|spamming|harass|harassing|call|calling|ring|ringing|hit me up|"
    r"reply|replying|respond|responding|writing|emailing)"
)
# "Don't text me back yet" / "don't text me until Monday" are about timing, not consent.
_NOT_LATER = (r"(?!(?:\s+me)?\s+(?:back|yet|until|till|before|after|while|at|on|tonight|"
              r"today|tomorrow|right now|now|during)\b)")
_DETAILS = (r"(?:number|name|info|information|contact|contact info|details|data|cell|phone|"
            r"record|records|file|email|address)")

# Plain-language revocations (the FCC's reasonable-person test), matched one sentence at a
# time on the reduced text. ``True`` marks a pattern whose object may be narrowed by what
# follows ("opt out *of the warranty plan*"): there the object must be ours.
_REVOCATION_PATTERNS: tuple[tuple[re.Pattern[str], bool, bool], ...] = tuple(
    # (pattern, scoped: the object after it must be ours, negation-led: already a "don't")
    (re.compile(p), scoped, negated)
    for p, scoped, negated in (
        (r"\b(?:unsubscribe|unsubscribed|unsubscribing|stopall|optout|opt ?me ?out|"
         r"opt out|opting out|revoke(?: my)?(?: consent)?)\b", True, False),
        (rf"\b(?:stop|quit|cease|halt)\s+(?:\w+\s+){{0,2}}?{_CONTACT}\b", True, False),
        (rf"\b(?:do not|dont)\s+(?:\w+\s+){{0,2}}?"
         rf"(?:text|txt|message|msg|sms|contact|spam|bother|harass)\w*\b{_NOT_LATER}",
         False, True),
        (r"\b(?:do not|dont|no need to|theres no need to|you dont need to)\s+(?:ever\s+)?"
         r"(?:reply|respond|write|answer)\s+(?:to\s+)?(?:me\s+|this number\s+|my number\s+|"
         r"this\s+)?(?:again|anymore|any more|ever)\b", False, True),
        (r"\b(?:do not|dont)\s+(?:ever\s+)?(?:reply|respond|write back)\s+to\s+"
         r"(?:me|this number|my number|this)\b", False, True),
        (r"\bnever\s+(?:\w+\s+){0,2}?(?:text|txt|message|msg|sms|contact|call)\w*\s+"
         r"(?:me|this number|us)\s+(?:again|anymore|ever)\b", False, True),
        (r"\b(?:cancel|end)\s+(?:\w+\s+){0,2}?(?:texts?|messages?|texting|messaging|"
         r"subscription|alerts?|notifications?|sms)\b", True, False),
        (r"\bdon'?t\s+(?:ever\s+)?(?:call|ring)\s+(?:me|this number)\s+(?:again|anymore|ever)\b",
         False, True),
        (r"\bno\s+(?:more|further)\s+(?:texts?|txts?|messages?|msgs?|sms|contact|calls?)\b",
         False, False),
        (rf"\b(?:take|remove|delete|drop|erase|scratch|scrub|purge|wipe|strike)\s+"
         rf"(?:me|my\s+(?:phone\s+)?{_DETAILS}(?:\s+number)?|this\s+number)\s+"
         rf"(?:off|from|out of)\b",
         True, False),
        (rf"\b(?:remove|delete|erase|lose|forget|drop|scrub|purge|wipe|trash|shred|destroy)\s+"
         rf"(?:me|my\s+(?:phone\s+|personal\s+|contact\s+)?{_DETAILS}(?:\s+number)?|"
         rf"this\s+number|our\s+number)\b", True, False),
        (rf"\b(?:do not|dont)\s+(?:keep|save|store|hold on to|use)\s+"
         rf"my\s+(?:phone\s+|personal\s+|contact\s+)?{_DETAILS}\b", False, True),
        (r"\b(?:leave|let)\s+me\s+alone\b", False, False),
        (r"\bgo\s+away\b", False, False),
        (r"\bnot\s+interested\b", False, False),
        (r"\bwrong\s+(?:number|person|guy|girl)\b", False, False),
        (r"\b(?:(?:i|we)\s+(?:want|wanna|would like|need)|id like|wed like)\s+(?:to\s+)?"
         r"(?:be\s+)?(?:removed|unsubscribed|opted out|off (?:your|the|this) list)\b",
         True, False),
        (r"\boff\s+(?:your|the|this|ur)\s+(?:\w+\s+)?list\b", False, False),
        (r"\b(?:do not|dont|don't)\s+(?:\w+\s+)?(?:want|need)\s+(?:any\s+|your\s+|these\s+)?"
         r"(?:more\s+)?(?:texts?|messages?|msgs?)\b", False, True),
        (r"\bi\s+(?:withdraw|revoke)\b", False, False),
        (r"\bwithdraw\s+(?:my\s+)?consent\b", False, False),
    )
)

# Explicit requests to resume our texts: opt-in (acted on only for an opted-out number).
_RESUME_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"\b(?:start|restart|resume|continue|turn on)\s+(?:\w+\s+){0,2}?"
        r"(?:texts?|texting|messages?|messaging|sms|txts?)\b(?:\s+\w+){0,2}\s+again\b",
        r"\b(?:restart|resume|turn on)\s+(?:\w+\s+){0,2}?"
        r"(?:texts?|texting|messages?|messaging|sms|txts?)\b",
        r"\bopt\s+(?:me\s+)?(?:back\s+)?in\b",
        r"\b(?:re ?subscribe|sign me back up|subscribe me again)\b",
        r"\b(?:you can|u can|please|pls|ok to|okay to|feel free to)\s+(?:text|message|txt)\s+"
        r"me\s+again\b",
        r"\b(?:i want|i would like|id like|i wanna)\s+(?:to\s+)?(?:get|receive)\s+(?:your\s+)?"
        r"(?:texts|messages)\s+again\b",
    )
)

# What the object after a scoped pattern may be: our texts, us, this thread.
_OURS = frozenset({
    "text", "texts", "txt", "txts", "texting", "message", "messages", "messaging", "msgs",
    "msg", "sms", "list", "lists", "number", "this", "these", "that", "them", "it", "you",
    "u", "ya", "yall", "us", "contact", "contacts", "marketing", "alerts", "notifications",
    "updates", "reminders", "thread", "conversation", "me", "everything", "here", "company",
    "business", "service", "services", "mailing", "subscription", "program",
    "mensajes", "textos",
    # where our records of them live: "delete me from your system"
    "system", "systems", "records", "record", "database", "files", "file", "books", "crm",
    "directory", "phone", "phones", "app", "account",
})
_DETERMINERS = frozenset({"the", "your", "ur", "my", "this", "that", "these", "those", "all",
                          "any", "our", "his", "her", "their", "a", "an", "of", "from"})
_SCOPE_PREPOSITIONS = frozenset({"of", "from", "to", "for", "on"})
# The customer themself as the object: skipped before looking for the scope.
_SELF = frozenset({"me", "us", "my", "number", "phone", "cell", "this", "info", "details",
                   "name", "contact", "data"})
# Neutral words that may follow an object without changing it ("unsubscribe me for now").
_NEUTRAL = frozenset({"now", "good", "ever", "today", "real", "please", "pls", "thanks",
                      "thank", "asap", "immediately", "right", "sure"})

# Verbs that, with no object, may or may not mean "stop texting me" (possible-optout).
_INTRANSITIVE = frozenset({"stop", "quit", "cancel", "end"})
# The word before such a verb that leaves the verb addressed to us ("you need to stop",
# "can you cancel?"); anything else ("I'll stop", "the end", "bus stop") does not.
_ADDRESSING = frozenset({"please", "pls", "plz", "just", "to", "you", "u", "ya", "yall",
                         "guys", "ok", "okay", "so", "now", "and", "then", "but", "gotta",
                         "must", "should", "can", "could", "would", "will"})
_QUESTION = frozenset({"when", "what", "where", "why", "how", "who", "which", "whats", "time",
                       "until", "till", "before", "after", "if", "whether", "whens"})
# Words after the verb that leave it without an object ("you need to stop now").
_NO_OBJECT = frozenset({"please", "pls", "plz", "now", "already", "it", "this", "that",
                        "right", "immediately", "asap", "thanks", "thank", "thx", "ty", "ok",
                        "okay", "lol", "ffs", "seriously", "honestly", "man", "dude", "bro",
                        "guys", "then", "you", "u", "yet", "ya", "yall"})

# A verb of stopping inside a "don't …" match turns it around: "don't stop texting me".
_DOUBLE_NEGATION = frozenset({"stop", "quit", "cease", "halt", "end", "cancel", "mind"})

_GRATITUDE_OBJECT = frozenset({"the", "your", "ur", "for", "my", "all", "any", "some"})

# Default escalation words for trades and clinics; the daemon takes them from the config.
DEFAULT_URGENT_WORDS = ("emergency", "urgent", "urgently", "asap", "flood", "flooding",
                        "flooded", "leak", "leaking", "fire", "smoke", "gas leak", "smell gas",
                        "burst", "sewage", "overflowing", "carbon monoxide", "no heat",
                        "no hot water", "no power", "sparking", "911")


def normalise(text: str) -> str:
    """NFKC, invisible characters (Unicode category Cf) removed, quotes straightened,
    case folded, whitespace (line breaks too) collapsed. Accents are kept."""
    return " ".join(reply_text.clean(text).split())


def _fold_accents(s: str) -> str:
    return reply_text.fold_accents(s)


def _tokens(s: str) -> list[str]:
    return reply_text.tokens(s)


def _strip_filler(tokens: Iterable[str]) -> list[str]:
    return [t for t in tokens if t not in _FILLER]


def _collapse(tokens: Sequence[str]) -> list[str]:
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


def typo_of(word: str) -> str | None:
    """The per-se word ``word`` misspells (see the module docstring), else None."""
    if (word in _NOT_TYPOS or word in OPTOUT_WORDS or word in _FILLER or word in HELP_WORDS
            or word in OPTIN_WORDS or len(word) < 3):
        return None
    runs = collapse_runs(word)
    if runs == "end":
        return "end"
    if runs in _NOT_TYPOS:
        return None
    for target in TYPO_TARGETS:
        if runs == target or damerau_levenshtein(runs, target) <= TYPO_MAX_DISTANCE \
                or damerau_levenshtein(word, target) <= TYPO_MAX_DISTANCE:
            return target
    return None


def _bare_keywords(tokens: Sequence[str], vocabulary: frozenset[str]) -> bool:
    """True when the tokens are only keywords of ``vocabulary`` plus filler."""
    core = _strip_filler(_collapse(tokens))
    if not core:
        # "Stop it" → core ['stop'] ; but "yes" / "it" alone are filler: look again without
        # removing filler words that are themselves keywords of this vocabulary.
        core = [t for t in _collapse(tokens) if t in vocabulary]
    return bool(core) and all(t in vocabulary for t in core)


def _bare_optout(words: Sequence[str]) -> bool:
    """Only keywords (of any class) and courtesy words, at least one an opt-out word:
    "STOP", "stop please", "HELP STOP" (opt-out beats help), "STOP por favor"; in a short
    reply a misspelt per-se word counts ("Stpo", "sotp pls")."""
    optout_vocab = OPTOUT_WORDS | {"optout"}
    if len(words) <= TYPO_MAX_WORDS:
        words = [typo_of(w) or w if w not in _FILLER else w for w in words]
    collapsed = _collapse(words)
    core = _strip_filler(collapsed) or [t for t in collapsed if t in optout_vocab]
    return bool(core) and any(t in optout_vocab for t in core) and all(
        t in optout_vocab or t in HELP_WORDS or t in OPTIN_WORDS for t in core)


def _negated(before: Sequence[str]) -> bool:
    """A negation among the (up to) three words before a match."""
    return any(t in _NEGATORS for t in before[-3:])


def _object_is_other(matched: Sequence[str], after: Sequence[str]) -> bool:
    """True when the words after a scoped match narrow it to something not ours:
    "… of the warranty plan", "… from your emails", "… me from the newsletter"."""
    if matched and matched[-1] in _SCOPE_PREPOSITIONS | {"off", "out"}:
        after = [matched[-1], *after]  # "remove me from" + "the waiting list"
    rest = [t for t in after if t not in _NEUTRAL]
    while rest and rest[0] in _SELF:
        rest = rest[1:]  # "unsubscribe me from …", "remove my number from …"
    if rest and rest[0] in {"off", "out"}:
        rest = ["of", *rest[1:]]
    if not rest or rest[0] not in _SCOPE_PREPOSITIONS:
        return False
    nouns = [t for t in rest[1:] if t not in _DETERMINERS]
    return bool(nouns) and nouns[0] not in _OURS


def _sentence_revokes(sentence: Sequence[str]) -> bool:
    spaced = " ".join(sentence)
    for pattern, scoped, negation_led in _REVOCATION_PATTERNS:
        for m in pattern.finditer(spaced):
            before = spaced[:m.start()].split()
            after = spaced[m.end():].split()
            if not negation_led and _negated(before):
                continue
            if negation_led and _DOUBLE_NEGATION & set(m.group(0).split()):
                continue  # "please don't stop texting me": keep texting
            if scoped and _object_is_other(m.group(0).split(), after):
                continue
            return True
    return False


def _is_optout(reply: Reply) -> bool:
    if not reply.words:
        return False
    if _bare_optout(reply.words):
        return True
    if any(_sentence_revokes(s) for s in reply.sentences):
        return True
    # One sentence among others that is a bare revocation word: "STOP. Who is this?"
    if len(reply.sentences) > 1:
        strong = (OPTOUT_WORDS | {"optout"}) - _WHOLE_MESSAGE_ONLY
        for i, toks in enumerate(reply.sentences):
            if _bare_keywords(toks, strong) and not (i > 0 and _negated(reply.sentences[i - 1])
                                                     and len(reply.sentences[i - 1]) <= 2):
                return True
    return False


def _is_possible_optout(reply: Reply) -> bool:
    """A per-se verb addressed to us with no object ("you need to stop", "I want to
    cancel"), or a stop-sign emoji with no words."""
    if not reply.words:
        return any(ch in reply_text.STOP_EMOJI for ch in reply.symbols)
    for sentence in reply.sentences:
        for i, word in enumerate(sentence):
            if word not in _INTRANSITIVE:
                continue
            before = sentence[:i]
            if before and before[-1] not in _ADDRESSING and not (
                    before[-1] == "i" and len(before) > 1 and before[-2] in {"can", "could",
                                                                             "may"}):
                continue  # "I'll stop", "the end", "bus stop"; but "can I cancel?"
            if _negated(before) or any(t in _QUESTION for t in before):
                continue
            after = [t for t in sentence[i + 1:] if t not in _NO_OBJECT]
            if not after:
                return True
    return False


def _is_optin(reply: Reply) -> bool:
    if len(reply.words) <= 4 and _bare_keywords(reply.words, OPTIN_WORDS):
        return True
    for sentence in reply.sentences:
        spaced = " ".join(sentence)
        for pattern in _RESUME_PATTERNS:
            m = pattern.search(spaced)
            if m and not _negated(spaced[:m.start()].split()):
                return True
    return False


def _is_help(words: Sequence[str]) -> bool:
    """The bare help word; not gratitude that mentions help ("thanks for the help")."""
    if len(words) > 4 or not _bare_keywords(words, HELP_WORDS):
        return False
    return not any(w in HELP_WORDS and i > 0 and words[i - 1] in _GRATITUDE_OBJECT
                   for i, w in enumerate(words))


def classify_reply(reply: Reply) -> KeywordClass:
    """The class of a reply already reduced by :func:`textback.inbound.reply_text.prepare`."""
    if reply.reaction:
        return "none"
    if _is_optout(reply):
        return "optout"
    if _is_possible_optout(reply):
        return "possible-optout"
    if not reply.words:
        return "none"
    if _is_optin(reply):
        return "optin"
    if _is_help(reply.words):
        return "help"
    return "none"


def classify(text: str) -> KeywordClass:
    """"optout", "optin", "help", "none" or "possible-optout" for one inbound text (see the
    module docstring)."""
    return classify_reply(prepare(text))


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
