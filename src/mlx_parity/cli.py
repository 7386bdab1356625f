"""``mlx-parity`` command line. Each subcommand lives in its own module under ``commands/``,
which adds its parser and handler; this file only wires them together and maps errors to exit
codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .errors import ParityError

# Modules under mlx_parity.commands, each with ``register(subparsers)``.
COMMANDS = (
    "probe",
    "fixture",
    "run",
    "workflow",
    "plan",
    "status",
    "dispatch",
    "collect",
    "compare",
    "explain",
    "bisect",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-parity",
        description="Keep an MLX fine-tuning trainer at parity with mlx-lm.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mlx_parity.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ParityError as exc:
        print(f"mlx-parity {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mlx-parity {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mlx-parity collect … | head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
