"""A tiny HTML renderer that escapes everything it is not told is markup.

Templates are ordinary ``str.format`` strings. Every value goes through :func:`esc` unless it
is :class:`Markup` (the output of another render, or a constant of ours), so a customer's
text — ``<script>``, ``"onmouseover=``, a right-to-left override — can only ever be text.
Characters that change how the rest of a line is drawn (bidi overrides and isolates,
zero-width and control characters but the newline) are shown as a visible ``\\u202e``
instead, as the CLI does, so a reply cannot make a number or a word read backwards.
A dependency (Jinja) would add autoescaping too; the pages need nothing else from one.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """A string that is already HTML (never escaped again)."""

    __slots__ = ()


_UNSEEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e"
                     "\u2066-\u2069\ufeff]")


def _visible(text: str) -> str:
    return _UNSEEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(_visible(str(value)), quote=True))


class _Formatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Markup):
            return value
        return esc(format(value, format_spec) if format_spec else value)


_formatter = _Formatter()


def render(template: str, **values: Any) -> Markup:
    """``template`` with ``{name}`` fields filled in, each escaped unless Markup."""
    return Markup(_formatter.vformat(template, (), values))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    return Markup(sep.join(esc(p) for p in parts))
