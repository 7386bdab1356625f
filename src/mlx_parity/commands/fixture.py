"""``mlx-parity fixture path``: print the embedded model directory, building it if needed."""

from __future__ import annotations

import argparse

from ..embedded_model import ensure_fixture


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    path = actions.add_parser("path", help="print the model directory (building it if needed)")
    path.set_defaults(handler=_path)


def _path(args: argparse.Namespace) -> int:
    print(ensure_fixture())
    return 0
