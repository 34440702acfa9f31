"""The config file's shape, and errors that point at the line the admin has to fix.

A section of ``textback.toml`` is declared **once**, as a frozen dataclass beside the code
that uses it (``[policy]`` in textback/outbound/settings.py, ``[pbx]`` and ``[trunks]`` in
textback/pbx/settings.py, ...): each field says its TOML key, type, default and check through
:func:`setting`, and :func:`section_table` and :func:`build_section` derive the schema and the
typed object from that one declaration, so a key cannot exist in the schema and be missing
from the object (or the other way round). This module imports nothing of textback but its
error root, so every layer may declare its own section.

``tomllib`` returns plain dicts with no positions, so :class:`LineIndex` scans the source
text itself: it follows ``[table]`` / ``[[array]]`` headers and ``key =`` lines and remembers
where each key was written. :class:`Checker` walks the parsed dict against a declarative
schema (``Table`` / ``Field``), rejects unknown keys with the nearest valid name (difflib,
as Home Assistant does) and names the expected type, so one run reports every mistake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One mistake in the file: where (dotted key and line) and what is wrong."""

    key: str
    line: int | None
    message: str

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def dotted(path: Path_) -> str:
    """``("did", 0, "templates")`` → ``did[1].templates`` (1-based, as an admin counts)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += ("." if out else "") + part
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_BARE = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=")


def _split_key(raw: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", raw)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class LineIndex:
    """Where each table and key of a TOML source was written (1-based line numbers).

    Good enough for real config files: headers, dotted keys, arrays of tables, and keys
    inside multi-line strings are skipped. Keys of inline tables resolve to the line of
    the inline table itself (the closest thing an admin can find).
    """

    def __init__(self, source: str) -> None:
        self._lines: dict[Path_, int] = {}
        counters: dict[Path_, int] = {}
        table: Path_ = ()
        in_multiline: str | None = None
        for number, line in enumerate(source.splitlines(), start=1):
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                names = _split_key(header.group(2))
                base: Path_ = ()
                for name in names[:-1]:
                    base = self._resolve((*base, name), counters)
                if header.group(1) == "[[":
                    arr = (*base, names[-1])
                    idx = counters.get(arr, -1) + 1
                    counters[arr] = idx
                    self._lines.setdefault(arr, number)
                    table = (*arr, idx)
                else:
                    table = (*base, names[-1])
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                path = table + tuple(_split_key(key.group(1)))
                for depth in range(len(table) + 1, len(path) + 1):
                    self._lines.setdefault(path[:depth], number)
                rest = line[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_multiline = quote

    def _resolve(self, path: Path_, counters: dict[Path_, int]) -> Path_:
        """``[did.templates]`` after ``[[did]]`` means the latest ``did`` element."""
        if path in counters:
            return (*path, counters[path])
        return path

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, else of its closest written parent, else None."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None


Validator = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class Field:
    """One key: its TOML type(s), default and an extra check returning an error or None.

    ``kind`` is one of: str, int, float (an integer is accepted), bool, str_list,
    float_list (unused), date_list (TOML dates or "YYYY-MM-DD"/"MM-DD" strings),
    str_or_str_list, int_map (a table of names to integers, e.g. per-country caps),
    table (with ``table``) and table_list (with ``table``).
    """

    kind: str
    default: Any = None
    required: bool = False
    check: Validator | None = None
    table: Table | None = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    fields: Mapping[str, Field]
    doc: str = ""
    open_keys: bool = False  # a free-form table (e.g. templates) where any key is allowed


_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str_list": "a list of strings",
    "date_list": 'a list of dates (2026-12-25 or "12-25" for every year)',
    "str_or_str_list": "a string or a list of strings",
    "int_map": 'a table of integers (e.g. {"US" = 100})',
    "table": "a table",
    "table_list": "an array of tables ([[...]])",
}


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    return type(value).__name__


_ANNUAL = re.compile(r"^(\d{2})-(\d{2})$")


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "str_or_str_list":
        return isinstance(value, str) or _kind_ok("str_list", value)
    if kind == "date_list":
        return isinstance(value, list) and all(
            (isinstance(v, dt.date) and not isinstance(v, dt.datetime)) or isinstance(v, str)
            for v in value
        )
    if kind == "int_map":
        return isinstance(value, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value.values())
    if kind == "table":
        return isinstance(value, dict)
    if kind == "table_list":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise ValueError(f"unknown field kind {kind!r}")


@dataclass
class Checker:
    """Walks a parsed document against a schema and collects every issue with its line."""

    lines: LineIndex
    issues: list[ConfigIssue] = field(default_factory=list)
    # usable but probably not what the admin meant; check-config prints them, --strict
    # refuses them (any check may add one: this list is the one place they meet)
    warnings: list[ConfigIssue] = field(default_factory=list)

    def error(self, path: Path_, message: str) -> None:
        self.issues.append(ConfigIssue(dotted(path), self.lines.line(path), message))

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(ConfigIssue(dotted(path), self.lines.line(path), message))

    def check_table(self, data: Mapping[str, Any], table: Table, path: Path_) -> dict[str, Any]:
        """Validated values of ``data`` with defaults filled in (bad values become defaults)."""
        out: dict[str, Any] = {}
        if not table.open_keys:
            for key in data:
                if key not in table.fields:
                    close = difflib.get_close_matches(key, list(table.fields), n=1, cutoff=0.6)
                    if close:
                        hint = f"did you mean '{close[0]}'?"
                    else:
                        hint = "valid keys: " + ", ".join(sorted(table.fields))
                    self.error((*path, key), f"unknown key; {hint}")
        for name, spec in table.fields.items():
            fpath = (*path, name)
            if name not in data:
                if spec.required:
                    self.error(fpath, f"missing: {_TYPE_NAMES[spec.kind]} is required here")
                if spec.kind == "table" and spec.table is not None:
                    # defaults of a missing table; its own missing keys are not news
                    out[name] = Checker(self.lines).check_table({}, spec.table, fpath)
                elif spec.kind == "table_list":
                    out[name] = []
                else:
                    out[name] = spec.default
                continue
            value = data[name]
            if not _kind_ok(spec.kind, value):
                self.error(
                    fpath, f"expected {_TYPE_NAMES[spec.kind]}, got {_toml_type(value)} "
                    f"{_short(value)}"
                )
                out[name] = spec.default
                continue
            if spec.kind == "table" and spec.table is not None:
                out[name] = self.check_table(value, spec.table, fpath)
                continue
            if spec.kind == "table_list" and spec.table is not None:
                out[name] = [
                    self.check_table(item, spec.table, (*fpath, i)) for i, item in enumerate(value)
                ]
                continue
            if spec.kind == "float" and isinstance(value, int):
                value = float(value)
            if spec.kind == "date_list":
                value = self._dates(value, fpath)
            if spec.check is not None:
                problem = spec.check(value)
                if problem:
                    self.error(fpath, problem)
                    out[name] = spec.default
                    continue
            out[name] = value
        return out

    def _dates(self, values: list[Any], path: Path_) -> list[dt.date | tuple[int, int]]:
        """Dates as ``date`` (one day) or ``(month, day)`` (every year)."""
        out: list[dt.date | tuple[int, int]] = []
        for value in values:
            if isinstance(value, dt.date):
                out.append(value)
                continue
            annual = _ANNUAL.match(value)
            try:
                if annual:
                    month, day = int(annual.group(1)), int(annual.group(2))
                    dt.date(2024, month, day)  # 2024 is a leap year: 02-29 is allowed
                    out.append((month, day))
                else:
                    out.append(dt.date.fromisoformat(value))
            except ValueError:
                self.error(path, f"{value!r} is not a date: write 2026-12-25, or \"12-25\" "
                           "for every year")
        return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- secrets

class Secret:
    """A secret string that never shows itself in repr/str (logs, tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ---------------------------------------------------------------- sections declared once

_S = TypeVar("_S")
_SETTING = "textback.setting"


@dataclass(frozen=True, slots=True)
class Setting:
    """What a section field is in the file: its key (the field's name unless the file says
    it in other units, e.g. ``cooldown_h`` for ``cooldown_s``), kind, default as written in
    the file, check, documentation, and how the checked value becomes the field's value."""

    kind: str
    default: Any = None
    key: str | None = None
    required: bool = False
    check: Validator | None = None
    doc: str = ""
    convert: Callable[[Any], Any] | None = None
    table: Table | None = None  # kind "table" / "table_list": the nested table


def setting(kind: str, default: Any = None, *, key: str | None = None,
            required: bool = False, check: Validator | None = None, doc: str = "",
            convert: Callable[[Any], Any] | None = None, table: Table | None = None) -> Any:
    """A section field read from the file (see the module doc). The dataclass default is the
    file default after ``convert`` (lists become tuples)."""
    spec = Setting(kind, default, key, required, check, doc, convert, table)
    value = _converted(spec, default)
    if isinstance(value, dict):
        return dataclasses.field(default_factory=lambda: dict(value), metadata={_SETTING: spec})
    return dataclasses.field(default=value, metadata={_SETTING: spec})


def _converted(spec: Setting, value: Any) -> Any:
    if spec.convert is not None and value is not None:
        return spec.convert(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _settings(cls: type) -> list[tuple[dataclasses.Field[Any], Setting]]:
    return [(f, f.metadata[_SETTING]) for f in dataclasses.fields(cls)
            if _SETTING in f.metadata]


def section_table(cls: type, *, doc: str = "") -> Table:
    """The schema of a section declared with :func:`setting`."""
    return Table({(s.key or f.name): Field(s.kind, s.default, s.required, s.check,
                                           table=s.table, doc=s.doc)
                  for f, s in _settings(cls)}, doc=doc)


def build_section(cls: type[_S], values: Mapping[str, Any], **computed: Any) -> _S:
    """The section object from the checked ``values`` of its table; ``computed`` gives the
    fields the file does not hold as they are (a secret read from a file, a port whose
    default depends on another key)."""
    kwargs: dict[str, Any] = {f.name: _converted(s, values[s.key or f.name])
                              for f, s in _settings(cls) if f.name not in computed}
    return cls(**kwargs, **computed)


# ---------------------------------------------------------------- checks every section uses

def one_of(*choices: str) -> Validator:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"{value!r} is not one of: {', '.join(choices)}"
        return None
    return check


def non_negative(value: Any) -> str | None:
    return "must be 0 or more" if value < 0 else None


def positive(value: Any) -> str | None:
    return "must be more than 0" if value <= 0 else None


def tcp_port(value: Any) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a TCP port (1-65535)"
