"""The subcommands of ``mlx-parity``, one module each (``configure(parser)`` adds its arguments
and handler to the parser ``cli.py`` made for it), and the conventions they share: how a seed or
probe list is written and checked, which ``--tolerance`` is usable, and the ``--matrix`` option.

Lists come from people and from dispatch forms, so they are checked character by character
against an allow-list before anything is looked up: a hostile value (quotes, ``$(``, backticks,
newlines, a space inside an item, slashes) is named in the refusal and never reaches a path, a
job output or a log line where a runner could read it as a workflow command.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from ..artifact import PROBE_ID_PATTERN, SEED_MAX
from ..errors import UsageError
from ..matrix import MATRIX_HELP

ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
SEED_CHARACTERS = frozenset("0123456789")


# reST inline markup in a docstring (``code``, :mod:`target`): help text shows only its text.
_MARKUP = re.compile(r"(?::[a-z]+:)?(`{1,2})([^`]+)\1")


def plain_text(doc: str) -> str:
    """A command's docstring as its help text: reST inline markup reduced to its text."""
    return _MARKUP.sub(r"\2", doc)


def add_matrix_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matrix", type=Path, metavar="DIR", help=MATRIX_HELP)


def check_tolerance(tolerance: float | None) -> None:
    """Refuse a ``--tolerance`` that allows no sensible |Δloss| (negative, NaN, infinite);
    None is a command's default."""
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise UsageError(f"--tolerance {tolerance:g}: use a finite number ≥ 0 (0: bit for bit)")


def output_directory(path: Path, flag: str = "--out") -> Path:
    """Create the folder results go to now, so an unusable one is refused before any training."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def refuse_unsafe(flag: str, value: str, allowed: frozenset[str], what: str) -> None:
    """Refuse ``value`` when it holds any character outside ``allowed``, naming each one."""
    bad = sorted({char for char in value if char not in allowed and char != ","})
    if bad:
        listed = " ".join(repr(char) for char in bad)
        raise UsageError(f"{flag} {value!r} contains characters {what} never has: {listed}")


def check_round_characters(round_id: str) -> None:
    if "," in round_id:
        raise UsageError(f"--round {round_id!r}: name one round, not a list")
    refuse_unsafe("--round", round_id, ID_CHARACTERS, "a round ID")


def split_list(flag: str, text: str) -> list[str]:
    """``a,b`` → ``["a", "b"]``; an empty text is "no filter"; empty items and repeats refused."""
    if text == "":
        return []
    items = text.split(",")
    if any(item == "" for item in items):
        raise UsageError(f"{flag} {text!r} has an empty item; write items as a,b,c")
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise UsageError(f"{flag} {text!r} repeats {', '.join(map(repr, repeated))}")
    return items


def trim_items(text: str) -> str:
    """``a, b`` → ``a,b``: a dispatch form invites a space after each comma. Only spaces around
    an item go; one inside an item (``co re``) is still refused."""
    return ",".join(item.strip(" ") for item in text.split(","))


def parse_probe_list(text: str, flag: str = "--probes") -> list[str]:
    text = trim_items(text)
    refuse_unsafe(flag, text, ID_CHARACTERS, "a probe list")
    probes = split_list(flag, text)
    for probe_id in probes:
        if not re.fullmatch(PROBE_ID_PATTERN, probe_id):
            raise UsageError(
                f"{flag}: {probe_id!r} is not a probe ID (1-64 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit)"
            )
    return probes


def parse_seed_list(text: str, flag: str = "--seeds") -> list[int]:
    """``1,7,42`` → [1, 7, 42]; the empty text is the empty list ("every seed")."""
    text = trim_items(text)
    refuse_unsafe(flag, text, SEED_CHARACTERS, "a seed list")
    items = split_list(flag, text)
    # Only digits are left and no item is empty, so size is all that can still be wrong.
    for item in items:
        if len(item) > 20 or int(item) > SEED_MAX:
            raise UsageError(f"{flag}: {item!r} is not a seed (0 to {SEED_MAX})")
    seeds = [int(item) for item in items]
    # "7" and "07" are the same seed.
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{flag} {text!r} repeats a seed")
    return seeds
