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
