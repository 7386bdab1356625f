"""Configuration without compute: loading a matrix, plan, collect and status never import MLX,
mlx-lm or a user's plugin, so the workflow's ubuntu jobs stay light and a plugin round can be
collected where the plugin is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Made unimportable in the child process: MLX, mlx-lm and the round's plugin module.
BLOCKED = ("mlx", "mlx_lm", "parity_plugin_that_is_not_installed")

CHILD = textwrap.dedent(
    """
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    import mlx_parity.matrix, mlx_parity.collect.compare, mlx_parity.commands.plan  # noqa
    from mlx_parity.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def run_blocked(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = f"BLOCKED = {BLOCKED!r}\n{CHILD}"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        # Outside GitHub Actions even when the suite runs inside a workflow.
        env={k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")},
        timeout=120,
    )


def write_plugin_round(root: Path) -> Path:
    matrix = root / "matrix"
    (matrix / "rounds").mkdir(parents=True)
    (matrix / "probes.toml").write_text(
        '[probes.mine]\ntrainer = "plugin:parity_plugin_that_is_not_installed.adapter:train"\n'
    )
    (matrix / "rounds" / "r.toml").write_text(
        'hypothesis = "h"\nprobes = ["reference", "mine"]\nseeds = [1, 2]\n'
    )
    return matrix


def seed_result(probe: str, trainer: str, seed: int) -> dict:
    return {
        "schema": "mlx-parity/seed-result/v1",
        "round_id": "r",
        "probe_id": probe,
        "seed": seed,
        "trainer": trainer,
        "fixture": {},
        "config": {},
        "environment": {
            "mlx": "0.32.4",
            "mlx_lm": "0.32.2",
            "python": "3.12",
            "platform": "darwin-arm64",
            "device": "gpu",
            "runner": "macos-15",
        },
        "rows": [
            {"step": 1, "loss": 2.5, "grad_norm": 1.0, "ntoks": 9, "input_shape": [6, 33], "lr": 1}
        ],
        "cf_loss": 0.1,
        "generation": "Unsloth",
        "passed": True,
        "status": "ok",
    }


def test_plan_collect_and_status_run_without_mlx_mlx_lm_or_the_plugin(tmp_path: Path) -> None:
    matrix = write_plugin_round(tmp_path)
    plan = run_blocked(["plan", "--round", "r", "--matrix", str(matrix)], tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert '"probe":"mine"' in plan.stdout

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    plugin = "plugin:parity_plugin_that_is_not_installed.adapter:train"
    for probe, trainer in {"reference": "reference", "mine": plugin}.items():
        for seed in (1, 2):
            text = json.dumps(seed_result(probe, trainer, seed))
            (artifacts / f"r__{probe}__seed{seed}.json").write_text(text)
    collect = run_blocked(
        ["collect", str(artifacts), "--round", "r", "--matrix", str(matrix), "--json", "r.json"],
        tmp_path,
    )
    assert collect.returncode == 0, collect.stderr
    assert "| `mine`" in collect.stdout

    status = run_blocked(["status", "--help"], tmp_path)
    assert status.returncode == 0 and "--report" in status.stdout
    for command in ("compare", "dispatch", "workflow"):
        shown = run_blocked([command, "--help"], tmp_path)
        assert shown.returncode == 0, (command, shown.stderr)


def test_a_training_command_without_the_mlx_extra_says_how_to_install_it(tmp_path) -> None:
    result = run_blocked(["probe", "--probe", "core", "--seeds", "1", "--out", "o"], tmp_path)
    assert result.returncode == 2
    assert "pip install 'mlx-parity[mlx]'" in result.stderr and "Traceback" not in result.stderr
