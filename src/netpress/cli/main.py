"""The ``netpress`` command. Each subcommand lives in its own module under ``netpress.cli``."""
from __future__ import annotations

import argparse
import importlib
import sys

from netpress.errors import NetpressError

# one module per command; each defines add_parser(subparsers)
COMMANDS = ["train", "runs", "quantize", "compress", "distill", "lowrank", "lottery", "prune", "sensitivity", "inspect", "decompress", "evaluate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netpress", description="Make neural networks small.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"netpress.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NetpressError as exc:
        print(f"netpress: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netpress: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


COMMANDS.append("export")  # runtime: ONNX export (cli/export.py)

if __name__ == "__main__":
    sys.exit(main())
