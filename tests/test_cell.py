"""The probe cell end to end: artifacts, determinism, failures recorded, kills survived."""

from __future__ import annotations

import json
import math
import os
import pty
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import probe_of
from mlx_parity import artifact
from mlx_parity.cell import CellProgress, run_cell
from mlx_parity.cli import main
from mlx_parity.errors import ExitCode
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs
from mlx_parity.matrix import ResolvedProbe
from mlx_parity.steps import StepRecord

FEW = Knobs(steps=3, max_new_tokens=4)


def core(**changes) -> ResolvedProbe:
    """The core probe on FEW with ``changes``."""
    return probe_of("core", "core", FEW.model_copy(update=changes))


def test_same_seed_twice_gives_identical_artifacts(tmp_path, model_source) -> None:
    first = run_cell("r1", core(), SMOKE, [5], tmp_path / "a", source=model_source)
    second = run_cell("r1", core(), SMOKE, [5], tmp_path / "b", source=model_source)
    assert first[0].comparable() == second[0].comparable()
    a = artifact.load(tmp_path / "a" / "r1__core__seed5.json")
    assert a.comparable() == first[0].comparable()  # exact through JSON
    assert a.status == "ok" and len(a.rows) == 3
    assert a.trainer == "core"
    assert set(a.timings) == {"load_s", "train_s", "eval_s", "total_s"}
    assert a.config["padding"] == "mlx-lm" and a.config["clip"] == "none"
    assert a.environment.mlx and a.environment.device
    assert isinstance(a.cf_loss, float) and isinstance(a.generation, str)


def test_unseeded_lora_init_does_not_depend_on_process_history(tmp_path) -> None:
    # A fresh source: the first seed gets the model mlx_lm.load built, later seeds a reload.
    # Building a model consumes RNG, so the harness must set its RNG state after the load.
    from mlx_parity.cell import ModelSource

    source = ModelSource(SMOKE.model_path())
    first, second = run_cell(
        "r1", core(seed_after_load=False), SMOKE, [1, 2], tmp_path, source=source
    )
    # The smoke rows are identical, so with the same LoRA init every seed trains identically.
    assert [r["loss"] for r in first.rows] == [r["loss"] for r in second.rows]


def test_nonfinite_loss_is_a_recorded_result(tmp_path, model_source) -> None:
    (result,) = run_cell("r1", core(steps=8, lr=1e30), SMOKE, [1], tmp_path, source=model_source)
    assert result.status == "nonfinite"
    assert not result.passed
    assert not math.isfinite(result.rows[-1]["loss"])
    loaded = artifact.load(tmp_path / "r1__core__seed1.json")
    assert not math.isfinite(loaded.rows[-1]["loss"])
    assert '"NaN"' in (tmp_path / "r1__core__seed1.json").read_text()


def test_a_failing_seed_is_recorded_and_the_cell_goes_on(tmp_path, model_source) -> None:
    # More LoRA layers than the model has fails inside the trainer for every seed.
    results = run_cell("r1", core(num_layers=99), SMOKE, [1, 2], tmp_path, source=model_source)
    assert [r.status for r in results] == ["error", "error"]
    assert "only 18 layers" in results[0].error
    assert len(list(tmp_path.glob("*.json"))) == 2


def run_cli(*args: str, capsys) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "paddng=multiple"], "unknown knob 'paddng'"),
        (["--set", "padding=wide"], "knob 'padding'"),
        (["--set", "clip=value:-1"], "clip policy"),
        (["--set", "steps=0"], "knob 'steps'"),
        (["--set", "optimizer=adam", "--set", "weight_decay=0.1"], "adam has no weight decay"),
        (["--set", "schedule=linear_warmup"], "warmup_steps > 0"),
        (["--set", "noequals"], "knob=value"),
        (["--seeds", "1,x"], "--seeds"),
        (["--seeds", "1,1"], "repeats"),
        (["--probe", "nope"], "pass --round ID with a round that names 'nope'"),
        (["--probe", "nope", "--round", "smoke"], "round 'smoke' has no probe 'nope'"),
        (
            ["--model", "/nonexistent/model-dir"],
            "cannot load model '/nonexistent/model-dir': no such directory",
        ),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, capsys, args, message) -> None:
    # Later flags win in argparse, so the bad value overrides the good default.
    argv = ["probe", "--quiet", "--probe", "core", "--seeds", "1", "--out", str(tmp_path), *args]
    code, err = run_cli(*argv, capsys=capsys)
    assert code == ExitCode.USAGE
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_reference_refuses_knobs_it_cannot_express(tmp_path, capsys) -> None:
    code, err = run_cli(
        "probe",
        "--probe",
        "reference",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--set",
        "loss_mask=exclusive",
        capsys=capsys,
    )
    assert code == ExitCode.USAGE and "loss_mask=exclusive" in err


def test_a_seed_that_errors_fails_the_probe_command(tmp_path, capsys) -> None:
    # More LoRA layers than the model has: the seed runs, ends in status error, and the
    # command says so with its own exit status (not a usage error).
    argv = ["probe", "--quiet", "--probe", "core", "--seeds", "1", "--out", str(tmp_path)]
    argv += ["--set", "num_layers=99", "--set", "steps=2"]
    assert main(argv) == ExitCode.SEED_FAILED
    result = artifact.load(tmp_path / "local__core__seed1.json")
    assert result.status == "error"
    # The log line names the exception, as the traceback's last line does.
    assert result.error_summary.split(":")[0] in (result.error or "").splitlines()[-1]
    assert f"core seed 1: error: {result.error_summary}\n" in capsys.readouterr().out


def test_killed_job_keeps_the_seeds_it_finished(tmp_path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "mlx_parity",
        "probe",
        "--probe",
        "core",
        "--seeds",
        "1,2,3,4",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "steps=3",
        "--set",
        "max_new_tokens=2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(out.glob("*.json"))
    assert finished, "no seed finished before the deadline"
    for path in finished:
        assert artifact.load(path).status == "ok"  # complete and valid, never half-written
    assert not [p for p in out.iterdir() if p.suffix != ".json" or p.name.startswith(".")] or all(
        p.name.endswith(".tmp") for p in out.iterdir() if p.name.startswith(".")
    )
    assert len(finished) < 4


def test_cli_probe_writes_one_artifact_per_seed(tmp_path, capsys) -> None:
    code = main(
        [
            "probe",
            "--probe",
            "reference",
            "--seeds",
            "3,4",
            "--out",
            str(tmp_path),
            "--quiet",
            "--set",
            "steps=2",
            "--set",
            "max_new_tokens=2",
            "--round",
            "demo",
        ]
    )
    assert code == ExitCode.OK
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert names == ["demo__reference__seed3.json", "demo__reference__seed4.json"]
    data = json.loads((tmp_path / names[0]).read_text())
    assert data["schema"] == artifact.SCHEMA and data["trainer"] == "reference"
    assert "seed 3: ok" in capsys.readouterr().out


def test_json_schema_is_exported() -> None:
    schema = artifact.json_schema()
    assert "schema" in schema["properties"] and "rows" in schema["required"]


def test_float32_losses_round_trip_exactly(tmp_path) -> None:
    import numpy as np
    from pydantic import TypeAdapter

    value = float(np.float32(1.2345678))
    row = artifact.Row(step=1, loss=value, grad_norm=None, ntoks=1, input_shape=(1, 2), lr=1e-3)
    rows = TypeAdapter(artifact.Row)
    assert rows.validate_json(rows.dump_json(row))["loss"] == value


def test_calibrating_seeds_record_the_drift_of_the_equivalent_variants(tmp_path, model_source):
    results = run_cell("r1", core(), SMOKE, [1, 2], tmp_path, source=model_source, calibrate=[1])
    calibrated, plain = results
    assert plain.noise is None and "noise_s" not in plain.timings
    noise = calibrated.noise
    assert noise is not None and noise.variants == ["reordered", "reassociated"]
    assert len(noise.loss) == len(noise.grad_norm) == FEW.steps
    # Float noise: below a thousandth of the loss, and not all zero (the variants do round
    # otherwise). Every step is an update here (no accumulation), so every norm is compared.
    assert all(
        0 <= d < 1e-3 * row["loss"] for d, row in zip(noise.loss, calibrated.rows, strict=True)
    )
    assert any(d > 0 for d in noise.loss)
    assert all(g is not None and g < 1e-4 for g in noise.grad_norm)
    assert artifact.load(tmp_path / artifact.artifact_name("r1", "core", 1)).noise == noise


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_progress_is_a_bar_on_a_terminal_and_a_line_per_seed_in_a_log(monkeypatch, terminal):
    """A CI job's log (stderr a pipe) gets one line per seed, not a bar redrawn per step."""
    read_end, write_end = pty.openpty() if terminal else os.pipe()
    monkeypatch.setattr(sys, "stderr", os.fdopen(write_end, "w"))
    progress = CellProgress()
    for seed in (1, 7):
        progress.start_seed(f"core seed {seed}", 2)
        for step in (1, 2):
            progress.step(StepRecord(step, 2.5 / step, 1.0, 40, (6, 33), 1e-3))
        progress.end_seed("ok pass cf=0.001")
    sys.stderr.close()
    progress._terminal.close()
    written = os.read(read_end, 1 << 16).decode()
    os.close(read_end)
    if terminal:
        assert "\r" in written and "core seed 7: 100%" in written and "2/2" in written
    else:
        lines = written.splitlines()
        assert len(lines) == 2 and "\r" not in written
        assert re.fullmatch(r"core seed 1: ok pass cf=0\.001 \(\d+\.\ds\)", lines[0])
        assert lines[1].startswith("core seed 7: ok pass")
