"""``mlx-parity init`` in a fresh git repository: both layouts, idempotent, --force, and the
generated workflow clean under the real linters."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import actionlint, schema_check, zizmor
from mlx_parity.cli import main
from mlx_parity.commands.init import TEMPLATES, probe_id_for, with_extra
from mlx_parity.errors import ExitCode, UsageError
from mlx_parity.matrix import resolve_round

WORKFLOW = ".github/workflows/mlx-parity.yml"
PLUGIN = "sample_trainer.parity:train"


def git_repository(path: Path, package: bool) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if package:
        (path / "pyproject.toml").write_text('[project]\nname = "sample-trainer"\nversion = "1"\n')
    return path


def init(repo: Path, *args: str) -> int:
    return main(["init", "--dir", str(repo), "--plugin", PLUGIN, *args])


@pytest.mark.parametrize(("package", "layout"), [(True, "trainer"), (False, "parity")])
def test_init_writes_a_matrix_pins_and_a_clean_workflow(tmp_path, package, layout, capsys):
    repo = git_repository(tmp_path / "repo", package)
    assert init(repo) == ExitCode.OK
    written = {str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()}
    assert {*TEMPLATES.values(), WORKFLOW} <= written
    for round_id in ("smoke", "parity"):
        rnd = resolve_round(round_id, repo / "matrix")
        assert list(rnd.probes) == ["reference", "core", "sample-trainer"]
        assert rnd.probe("sample-trainer").trainer.name == f"plugin:{PLUGIN}"
    assert resolve_round("parity", repo / "matrix").fixture.model == "unsloth/gemma-3-270m-it"
    assert f'layout = "{layout}"' in (repo / "matrix/workflow.toml").read_text()

    pins = (repo / "runner/pins/default.txt").read_text().splitlines()
    assert "mlx-parity[mlx]==0.1.0" in pins and any(p.startswith("mlx-lm==") for p in pins)
    control = (repo / "runner/pins/control.txt").read_text().splitlines()
    assert "-c default.txt" in control and "mlx-parity==0.1.0" in control
    workflow = (repo / WORKFLOW).read_text()
    probe_install = next(line for line in workflow.splitlines() if "runner/pins/${PINS}" in line)
    # The checkout is the code under test in a trainer's repository, and nothing in a parity one.
    assert probe_install.endswith('.txt" .') == (layout == "trainer")
    for check in (actionlint, zizmor, schema_check):
        result = check(repo / WORKFLOW)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "layout " + layout in capsys.readouterr().out


def test_init_again_changes_nothing_and_keeps_edits_unless_forced(tmp_path, capsys):
    repo = git_repository(tmp_path / "repo", package=True)
    assert init(repo) == ExitCode.OK
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert init(repo) == ExitCode.OK
    assert "written" not in capsys.readouterr().out.replace("written\n", "")
    assert {p: p.read_bytes() for p in before} == before

    smoke = repo / "matrix/rounds/smoke.toml"
    smoke.write_text(smoke.read_text().replace("seeds = [1, 42]", "seeds = [1, 7, 42]"))
    assert init(repo) == ExitCode.DIFFERENCE  # an edit is kept: init did not finish the job
    assert "matrix/rounds/smoke.toml" in capsys.readouterr().out
    assert "seeds = [1, 7, 42]" in smoke.read_text()
    assert init(repo, "--force") == ExitCode.OK
    assert "seeds = [1, 42]" in smoke.read_text()


def test_init_needs_a_git_repository_and_a_plugin_of_the_right_form(tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert main(["init", "--dir", str(plain), "--plugin", PLUGIN]) == ExitCode.USAGE
    assert "not inside a git repository" in capsys.readouterr().err
    repo = git_repository(tmp_path / "repo", package=True)
    assert main(["init", "--dir", str(repo), "--plugin", "a b:c"]) == ExitCode.USAGE
    assert not (repo / "matrix").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--probe", "My Trainer"], "--probe 'My Trainer' contains characters"),
        (["--probe", "core"], "--probe 'core' is the built-in probe 'core'"),
        (["--probe", "Core"], "--probe 'Core' is the built-in probe 'core'"),
        (["--probe", "a,b"], "name one probe"),
        (["--branch", "a b"], "--branch 'a b' is not a branch name"),
        (["--branch", 'feat"x'], "is not a branch name"),
        (["--mlx-parity", "mlx_parity_extra==1"], "is not a requirement for mlx-parity"),
    ],
)
def test_flags_that_would_write_a_broken_matrix_are_refused_before_writing(
    tmp_path, capsys, flags, message
):
    repo = git_repository(tmp_path / "repo", package=True)
    assert init(repo, *flags) == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in repo.iterdir()) == [".git", "pyproject.toml"]
    assert init(repo) == ExitCode.OK  # nothing half-written is left to be "kept"


def test_a_probe_id_derived_from_a_built_in_name_is_refused_before_writing(tmp_path, capsys):
    repo = git_repository(tmp_path / "repo", package=True)
    assert main(["init", "--dir", str(repo), "--plugin", "Reference.parity:train"]) == 2
    assert "is the built-in probe 'reference'" in capsys.readouterr().err
    assert not (repo / "matrix").exists()


def test_a_probe_id_with_a_dot_is_one_probe(tmp_path):
    repo = git_repository(tmp_path / "repo", package=True)
    assert init(repo, "--probe", "my.trainer") == ExitCode.OK
    assert list(resolve_round("smoke", repo / "matrix").probes)[-1] == "my.trainer"


def test_probe_ids_and_requirements() -> None:
    assert probe_id_for("my_trainer.parity:train") == "my-trainer"
    assert probe_id_for("unsloth-zoo") == "unsloth-zoo"
    assert probe_id_for("my_trainer.parity") == "my-trainer-parity"  # an entry-point name
    assert with_extra("mlx-parity==1.2.0") == "mlx-parity[mlx]==1.2.0"
    assert with_extra("mlx-parity @ git+https://example.com/x@abc") == (
        "mlx-parity[mlx] @ git+https://example.com/x@abc"
    )
    with pytest.raises(UsageError):
        with_extra("numpy==2")
