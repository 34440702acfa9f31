"""The ``textback`` command line.

Every module in this package (not starting with ``_``) is one command group and exposes
``register(subparsers)``, which adds its sub-command(s) and sets ``func`` on them; ``func``
takes the parsed arguments and returns the exit status. Discovery keeps the command modules
independent of each other: adding a command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from textback import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textback",
        description="Missed-call text-back for self-hosted Asterisk and FreeSWITCH PBXes.",
    )
    parser.add_argument("--version", action="version", version=f"textback {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
    _plain_help(parser)
    return parser


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Command descriptions are the modules' docstrings, written for the source (``code``
    in reStructuredText); --help shows them to an admin as plain text."""
    if parser.description:
        parser.description = parser.description.replace("``", "")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _plain_help(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `textback replay ... | head` closes our stdout early; that is not an error.
        sys.stderr.close()
        return 0
    return int(status or 0)
