"""CLI conventions: the exit-status table in the README is the one in errors.py, run IDs are
written run:<ID>, and user errors end in one line, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlx_parity.cli import COMMANDS, build_parser, main
from mlx_parity.errors import ExitCode, UsageError
from mlx_parity.github.runs import parse_run_source
from mlx_parity.knobs import KNOB_NAMES, Knobs

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_exit_codes() -> dict[int, str]:
    section = README.read_text(encoding="utf-8").split("### Exit status", 1)[1]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section.split("\n\n", 2)[1], re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def test_readme_documents_every_exit_code() -> None:
    assert set(readme_exit_codes()) == {code.value for code in ExitCode}


def test_every_command_is_listed_with_help_and_configures() -> None:
    parser = build_parser()
    for name in COMMANDS:
        assert parser.parse_args([name, *_minimal(name)]).command == name


def _minimal(name: str) -> list[str]:
    # The fewest arguments each command's parser accepts.
    return {
        "init": ["--plugin", "m:f"],
        "run": ["--round", "x"],
        "probe": ["--probe", "core", "--seeds", "1", "--out", "o"],
        "collect": ["d", "--round", "x"],
        "compare": ["a", "b"],
        "explain": ["d"],
        "bisect": ["--round", "x", "--from", "a", "--to", "b"],
        "plan": ["--round", "x"],
        "status": ["--report", "r.json"],
        "dispatch": ["--round", "x"],
        "workflow": ["check"],
        "fixture": ["path"],
    }[name]


def test_run_ids_are_written_with_their_prefix() -> None:
    assert parse_run_source("run:123") == 123
    assert parse_run_source("123") is None  # a folder named 123, not a download
    assert parse_run_source("out/demo") is None
    for bad in ("run:", "run:12a", "run:-1", "run:١٢"):
        with pytest.raises(UsageError, match="run:<numeric run ID>"):
            parse_run_source(bad)


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "no-such-dir"],
        ["explain", "run:x1"],
        ["compare", "no-such.json", "other.json"],
        ["collect", "no-such-dir", "--round", "no-such-round"],
        ["plan", "--round", "smoke", "--seeds", "1;2"],
        ["probe", "--probe", "core", "--seeds", "1", "--out", "o", "--set", "paddingg=x"],
        ["probe", "--probe", "nope", "--seeds", "1", "--out", "o"],
        ["probe", "--probe", "core", "--seeds", "1", "--out", "o", "--model", "/no/such/model"],
        ["bisect", "--round", "smoke", "--from", "reference", "--to", "core"],
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"mlx-parity {argv[0]}: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        # An output folder that is a file: refused before anything trains.
        (["probe", "--probe", "core", "--seeds", "1", "--out", "afile"], "--out afile is a file"),
        (["run", "--round", "smoke", "--out", "afile"], "--out afile is a file"),
        # A report or workflow file below a file: the path and the reason, exit 2.
        (["workflow", "generate", "--file", "afile/x.yml"], "afile"),
    ],
)
def test_unusable_output_paths_are_one_line_and_exit_2(argv, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"mlx-parity {argv[0]}: error: ") and err.count("\n") == 1
    assert named in err and "Traceback" not in err


def test_an_unwritable_github_output_is_named(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "missing" / "output"))
    assert main(["plan", "--round", "smoke"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "GITHUB_OUTPUT" in err and str(tmp_path / "missing" / "output") in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "usage", "unrecognised"),
    [
        (
            ["collect", "d", "--round", "x", "--artifacts", "y"],
            "mlx-parity collect",
            "--artifacts y",
        ),
        (["workflow", "check", "--bogus"], "mlx-parity workflow check", "--bogus"),
        (["fixture", "path", "extra"], "mlx-parity fixture path", "extra"),
    ],
)
def test_an_unrecognised_argument_is_refused_by_its_command(
    argv, usage, unrecognised, capsys
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {usage} ")
    assert f"\n{usage}: error: unrecognized arguments: {unrecognised}\n" in err


def test_probe_help_lists_every_knob_with_its_values_and_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    out = capsys.readouterr().out
    listed = re.findall(r"^  ([a-z_]+) +\S", out.split("knobs for --set", 1)[1], re.MULTILINE)
    assert listed == list(KNOB_NAMES)
    assert re.search(r"^  padding +mlx-lm\|multiple +mlx-lm +batch padding rule", out, re.M)
    assert re.search(r"^  lr +number +0\.001 +the learning rate", out, re.M)
    assert re.search(r"^  compile +true\|false +true +mx\.compile", out, re.M)
    # Every knob says what it changes.
    assert all(field.description for field in Knobs.model_fields.values())
