"""The ``netpress`` command. Each subcommand lives in its own module under ``netpress.cli``."""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from netpress.cli import common
from netpress.errors import NetpressError

# one module per command; each defines add_parser(subparsers)
COMMANDS = ["train", "runs", "sweep", "quantize", "compress", "distill", "lowrank", "lottery", "prune", "sensitivity", "inspect", "decompress", "evaluate"]

_NEGATIVE_VALUE = re.compile(r"^-[\d.]")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``netpress: error: ...`` line (exit 2), not a usage block."""

    def error(self, message: str):
        if message.endswith("required: COMMAND"):
            message += f" (one of {', '.join(COMMANDS)})"
        self.exit(2, f"netpress: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="netpress", description="Make neural networks small.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"netpress.cli.{name}").add_parser(sub)
    return parser


def attach_negative_values(argv: list[str]) -> list[str]:
    """``--steps -5ep`` -> ``--steps=-5ep``, so a value starting with ``-`` reaches its check (which says what is
    wrong) instead of argparse's "expected one argument"."""
    out: list[str] = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_VALUE.match(tok):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(attach_negative_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        common.preflight(args)
        return int(args.func(args) or 0)
    except NetpressError as exc:
        print(f"netpress: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netpress: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


COMMANDS.append("export")  # runtime: ONNX export (cli/export.py)

if __name__ == "__main__":
    sys.exit(main())
