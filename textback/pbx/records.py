"""Reading a PBX's own call records (Asterisk CEL, FreeSWITCH CDR) from the files its stock
modules write: a SQLite table or a CSV file with no header line.

Both sources are written by the PBX while we read them, and neither is ours to lock or to
trust: the SQLite file is opened read-only with a short busy timeout (the PBX is never held
up), a table without the columns the shipped module config writes is refused naming them,
and a CSV line of the wrong shape (the last one, half written as we read; a value the PBX
pasted in unescaped) costs only itself. A source with no usable line at all is not ours:
one clear error, which the daemon logs and runs on without recovery.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from textback.errors import TextbackError


def read_sqlite(path: Path, *, table: str, query: str, params: Mapping[str, Any],
                required: Iterable[str], error: type[TextbackError], kind: str,
                config_hint: str) -> list[dict[str, str]]:
    """The rows ``query`` (with ``{table}`` in it) selects from ``table``, as text.

    ``kind`` names the source in errors ("CEL", "CDR"); ``config_hint`` the shipped module
    config that writes the expected columns."""
    if not table.isidentifier():
        raise error(f"{kind} table name {table!r} is not a plain SQL identifier")
    if not path.exists():
        raise error(f"{kind} database {path} does not exist (is its module loaded and "
                    f"configured as in {config_hint}?)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error as exc:
        raise error(f"{kind} database {path}: {exc}") from exc
    try:
        con.row_factory = sqlite3.Row
        try:
            names = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            check_columns(names, required, error, f"{kind} table {table} in {path}",
                          config_hint)
            rows = con.execute(query.format(table=table), params).fetchall()
        except sqlite3.Error as exc:
            raise error(f"{kind} database {path}: {exc}") from exc
    finally:
        con.close()
    return [{k: ("" if v is None else str(v)) for k, v in dict(r).items()} for r in rows]


def read_csv(path: Path, *, columns: Sequence[str], required: Iterable[str],
             error: type[TextbackError], kind: str,
             config_hint: str) -> list[dict[str, str]]:
    """Every line of the right shape as a row (``columns`` in the shipped order); lines of
    another shape are skipped, unless no line fits: then the first one is named."""
    check_columns(list(columns), required, error, f"{kind} CSV columns for {path}",
                  config_hint)
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            lines = list(csv.reader(f))
    except (OSError, csv.Error) as exc:
        raise error(f"{kind} CSV {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    out: list[dict[str, str]] = []
    first_bad: tuple[int, int] | None = None
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        if len(line) != len(columns):
            first_bad = first_bad or (n, len(line))
            continue
        out.append(dict(zip(columns, line, strict=True)))
    if not out and first_bad is not None:
        n, count = first_bad
        raise error(f"{kind} CSV {path} line {n}: {count} fields, expected {len(columns)} "
                    f"({', '.join(columns)}): configure it as {config_hint} does")
    return out


def check_columns(names: Sequence[str], required: Iterable[str],
                  error: type[TextbackError], what: str, config_hint: str) -> None:
    missing = sorted(set(required) - set(names))
    if missing:
        raise error(f"{what} lacks the column(s) {', '.join(missing)}: configure it as "
                    f"{config_hint} does")
