"""The docs say what the code does (issue 16 items 11 and 13).

Parsed, not grepped by hand: every ``textback <command> [--flag]`` named in README.md and
docs/*.md exists in the argparse parser; every config key of the schema is documented in
docs/config.md and every key documented there exists; the shipped example config is valid
without warnings; the unit's Documentation= names a file the wheel installs.
"""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path

from textback.config import load_config

REPO = Path(__file__).resolve().parents[1]


# -- install (item 11) --------------------------------------------------------------------

def _data_files() -> dict[str, list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return {k: v.split() for k, v in cfg["options.data_files"].items()}


def test_unit_documentation_is_a_file_the_wheel_installs() -> None:
    """Documentation=file:/opt/textback/share/doc/textback/X: the /opt/textback venv of
    docs/deploy.md gets X from the wheel's data files (make install-check runs it)."""
    unit = (REPO / "systemd" / "textback.service").read_text()
    docs = re.findall(r"^Documentation=(.+)$", unit, re.MULTILINE)
    assert docs
    exec_start = re.search(r"^ExecStart=(/\S+)/bin/textback ", unit, re.MULTILINE)
    assert exec_start is not None
    prefix = exec_start.group(1)  # /opt/textback
    installed = {f"{prefix}/{target}/{Path(src).name}": src
                 for target, sources in _data_files().items() for src in sources}
    for url in " ".join(docs).split():
        assert url.startswith("file:"), url
        path = url[len("file:"):]
        assert path in installed, f"{path} is not installed by setup.cfg data_files"
        assert (REPO / installed[path]).is_file()


def test_example_config_is_valid_without_warnings(tmp_path: Path) -> None:
    """docs/textback.example.toml, as deploy.md installs it (secret_file beside it)."""
    config = tmp_path / "textback.toml"
    config.write_text((REPO / "docs" / "textback.example.toml").read_text())
    secret = tmp_path / "pbx.secret"
    secret.write_text("example\n")
    os.chmod(secret, 0o600)
    loaded = load_config(config)
    assert loaded.warnings == () and loaded.dids and loaded.modems


def test_make_test_runs_the_install_check() -> None:
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^test: .*\binstall-check\b", make, re.MULTILINE)
    recipe = make[make.index("install-check: $(STAMP)"):]
    for step in ("-m build", "--version", "check-config --strict", "textback.example.toml"):
        assert step in recipe


# -- the command line (item 13) -------------------------------------------------------------

import argparse  # noqa: E402

from textback.cli import build_parser  # noqa: E402


def _parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)command's parser by its words: ("modem", "probe") -> parser."""
    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(words: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
        out[words] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk((*words, name), sub)

    walk((), build_parser())
    return out


def test_help_texts_are_plain_text_for_admins() -> None:
    """--help shows no reStructuredText markup and no internal names."""
    bad = {}
    for words, parser in _parsers().items():
        text = parser.format_help()
        found = [m for m in ("``", ":class:", ":func:", "CallOutcome", "to_record", "sans-IO")
                 if m in text]
        if found:
            bad[" ".join(words) or "textback"] = found
    assert bad == {}


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_INVOCATION = re.compile(r"(?<!-u )(?<![\w/.:@\[-])(?:/[\w/.-]*/bin/)?"
                         r"textback(?= )([^\n|;&`#)]*)")
# "textback <word>" in code that is not a command: prose inside a code comment
_NOT_COMMANDS = {"textback", "runs", "via"}


def _invocations() -> list[tuple[str, list[str], list[str]]]:
    """(file, command words, --flags) for every ``textback …`` in code in README and docs."""
    out = []
    parsers = _parsers()
    for path in DOCS:
        for code in _CODE.finditer(path.read_text(encoding="utf-8")):
            for inv in _INVOCATION.finditer(code.group(0)):
                tokens = inv.group(1).split()
                words: list[str] = []
                while tokens and (*words, tokens[0]) in parsers:
                    words.append(tokens.pop(0))
                if not words and tokens and tokens[0].startswith("--"):
                    out.append((path.name, [], tokens[:1]))  # textback --version
                    continue
                if not words and tokens and (tokens[0] in _NOT_COMMANDS
                                               or not re.match(r"[a-z]", tokens[0])):
                    continue  # `journalctl -u textback -f`, `sudo -u textback /opt/...`
                flags = [t.split("=")[0] for t in tokens
                         if re.fullmatch(r"--[a-z][a-z-]*(=.*)?", t)]
                out.append((path.name, words if words or not tokens else [tokens[0]], flags))
    return out


def test_every_command_and_flag_in_the_docs_exists() -> None:
    parsers = _parsers()
    found = _invocations()
    assert len(found) > 40
    wrong = []
    for name, words, flags in found:
        parser = parsers.get(tuple(words))
        if parser is None:
            wrong.append(f"{name}: textback {' '.join(words)}: no such command")
            continue
        known = {s for a in parser._actions for s in a.option_strings}
        wrong += [f"{name}: textback {' '.join(words)} {flag}: no such flag"
                  for flag in flags if flag not in known]
    assert wrong == []


def test_every_command_is_in_the_readme_cli_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## The CLI"):]
    table = table[:table.index("\n## ")]
    commands = {words[0] for words in _parsers() if len(words) == 1}
    assert sorted(c for c in commands if f"`textback {c}" not in table) == []


# -- config keys (item 13) ------------------------------------------------------------------

_HEADER = re.compile(r"^#?\s*\[\[?\s*([a-z_.]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^#?\s*([a-z_]+|\"[A-Za-z*]+\")\s*=")


def _schema_keys() -> set[str]:
    from textback.config import SCHEMA
    from textback.schema import Table

    keys: set[str] = set()

    def walk(prefix: str, table: Table) -> None:
        for name, spec in table.fields.items():
            path = f"{prefix}.{name}" if prefix else name
            if spec.table is not None:
                walk(path, spec.table)
            else:
                keys.add(path)

    walk("", SCHEMA)
    return keys


def _documented_keys() -> set[str]:
    """Keys written (or commented out, as an option) in docs/config.md's TOML example."""
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    keys: set[str] = set()
    for block in re.findall(r"```toml\n(.*?)```", text, re.DOTALL):
        table = ""
        for line in block.splitlines():
            line = line.strip()
            header = _HEADER.match(line)
            if header:
                table = header.group(1)
                continue
            key = _KEY.match(line)
            if key and not key.group(1).startswith('"'):  # "US" = 100: a map's entry
                keys.add(f"{table}.{key.group(1)}" if table else key.group(1))
    return keys


def test_every_config_key_is_documented_and_every_documented_key_exists() -> None:
    schema, documented = _schema_keys(), _documented_keys()
    # [did.hours] takes the keys of [hours], and config.md says so
    assert "# [did.hours]                  # optional: this DID's own hours (same keys as " \
        "[hours])" in (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    documented |= {"did." + k for k in documented if k.startswith("hours.")}
    assert len(schema) > 80
    assert sorted(schema - documented) == [], "keys missing from docs/config.md"
    assert sorted(documented - schema) == [], "docs/config.md names keys that do not exist"


def test_docs_agree_logs_go_to_stderr() -> None:
    """The daemon logs to stderr (textback.logfmt.setup_logging); no doc says stdout."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"logs? (?:go )?to stdout", text), path.name
    assert "logs to stderr" in (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "on stderr" in (REPO / "README.md").read_text(encoding="utf-8")
