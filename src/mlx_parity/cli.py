"""``mlx-parity`` command line. Each subcommand lives in its own module under ``commands/``
(``configure(parser)`` adds its arguments and handler); this file lists them, imports only the
one being run (the ubuntu jobs of the workflow never import MLX), and maps errors to exit codes
(the table is ``errors.ExitCode``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .errors import ExitCode, ParityError

# Subcommand -> one line of help; its module is mlx_parity.commands.<name>.
COMMANDS = {
    "init": "start using mlx-parity in this git repository",
    "run": "run a round locally and collect it",
    "probe": "run one probe over a list of seeds",
    "collect": "compare a round's seed results with its baseline and report",
    "compare": "what changed between two rounds' reports",
    "explain": "name the core configuration a candidate trainer behaves like",
    "bisect": "find the knobs that make probe B diverge from A",
    "plan": "validate a round and write the probe matrix for GitHub Actions",
    "status": "post a round report's commit statuses to GitHub",
    "dispatch": "validate a round locally, then start it on GitHub",
    "workflow": "generate or check the GitHub Actions workflow",
    "fixture": "the embedded default model",
}


# What the `mlx` extra installs; commands that train import them.
COMPUTE_MODULES = frozenset({"mlx", "mlx_lm", "tokenizers"})


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed; only ``selected`` (None: all) is configured."""
    parser = argparse.ArgumentParser(
        prog="mlx-parity", description="Keep an MLX fine-tuning trainer at parity with mlx-lm."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if selected is None or name == selected:
            importlib.import_module(f"mlx_parity.commands.{name}").configure(command)
        _remember_parser(command)
    return parser


def _remember_parser(parser: argparse.ArgumentParser) -> None:
    """Record in the parsed arguments which (sub)command parser matched, so an unrecognised
    argument is refused with that command's usage (``workflow check``), not the top level's."""
    parser.set_defaults(command_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _remember_parser(child)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args, unrecognised = parser.parse_known_args(argv)
    if unrecognised:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unrecognised)}")

    def fail(message: str, code: int) -> int:
        print(f"mlx-parity {args.command}: {message}", file=sys.stderr)
        return int(code)

    try:
        return int(args.handler(args) or ExitCode.OK)
    except ParityError as exc:
        return fail(f"error: {exc}", exc.exit_code)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in COMPUTE_MODULES:
            raise
        return fail(
            f"error: this command trains and needs {exc.name}, which is not installed: "
            "pip install 'mlx-parity[mlx]'",
            ExitCode.USAGE,
        )
    except KeyboardInterrupt:
        return fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`mlx-parity collect … | head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except OSError as exc:
        if exc.filename is None:
            raise
        # A path the user (or the runner's environment) gave that cannot be read or written:
        # an --out that is a file, a report beside a missing folder, an unwritable GITHUB_OUTPUT.
        return fail(f"error: {exc.filename}: {exc.strerror or exc}", ExitCode.USAGE)


if __name__ == "__main__":
    sys.exit(main())
