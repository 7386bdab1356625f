"""The local round runner: a whole round on a worker pool, interrupted, resumed, collected."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import make_result
from mlx_parity import artifact
from mlx_parity.commands.run import plan_tasks
from mlx_parity.matrix import resolve_round
from mlx_parity.names import probe_context, round_context

SMOKE_ROUND = resolve_round("smoke")
SMOKE_CELLS = 6  # 3 probes x 2 seeds


def start_run(*args: str, out: Path, quiet: bool = True) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlx_parity", "run", "--out", str(out), *args]
    if quiet:
        cmd.append("--quiet")
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As from a terminal: a test runner started in the background (CI) inherits SIGINT
        # ignored, and exec keeps that; Ctrl-C must reach the round as it would a user's.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_artifacts(out: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("*.json"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} artifacts before the deadline")


def worker_pids(parent: int) -> list[int]:
    """The pool's worker processes: children of ``parent`` running multiprocessing's spawn."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and "spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_smoke_round_runs_and_collects(tmp_path) -> None:
    out = tmp_path / "smoke"
    proc = start_run("--round", "smoke", "--workers", "2", out=out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert len(list(out.glob("smoke__*.json"))) == SMOKE_CELLS
    # The terminal's probe table: aligned plain text, not the Markdown report.md holds.
    assert "round smoke: passed" in stdout and "| probe" not in stdout
    assert re.search(r"^clip-legacy +clip=value:1 ", stdout, re.MULTILINE)
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    # The baseline's first two seeds measured the noise floor; core is bitwise all the same.
    floor = report["noise_floor"]
    assert floor["seeds"] == SMOKE_ROUND.seeds[:2]
    assert floor["variants"] == ["reassociated", "reordered"]
    assert len(floor["loss"]) == SMOKE_ROUND.probe("core").knobs.steps
    assert 0 < floor["loss"][0] <= floor["loss"][-1] < 1e-3
    core = next(p for p in report["probes"] if p["id"] == "core")
    assert {s["trace"] for s in core["seeds"]} == {"identical"}
    contexts = {s["context"] for s in report["statuses"]}
    assert contexts >= {round_context("smoke"), probe_context("smoke", "core")}
    assert (out / "report.html").read_text().count("<svg") >= 2


def test_worker_killed_mid_round_loses_only_its_seed_and_resume_completes(tmp_path) -> None:
    out = tmp_path / "killed"
    proc = start_run("--round", "smoke", "--workers", "2", out=out)
    wait_for_artifacts(out, 1, proc)
    workers = worker_pids(proc.pid)
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    finished = list(out.glob("smoke__*.json"))
    for path in finished:
        artifact.load(path)  # everything on disk is complete and valid
    if len(finished) < SMOKE_CELLS:
        # The lost seed is named, the round is incomplete, and the gate says so.
        assert "lost" in stderr.lower()
        assert proc.returncode == 1
        assert "missing" in stdout.lower()
    resumed = start_run("--round", "smoke", "--workers", "2", "--resume", out=out)
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert f"{SMOKE_CELLS - len(finished)} to train, {len(finished)} already finished" in stderr
    assert len(list(out.glob("smoke__*.json"))) == SMOKE_CELLS


def test_ctrl_c_stops_cleanly_and_keeps_finished_seeds(tmp_path) -> None:
    out = tmp_path / "interrupted"
    proc = start_run("--round", "smoke", "--workers", "1", out=out)
    wait_for_artifacts(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "--resume" in stderr
    assert "Traceback" not in stderr
    kept = list(out.glob("smoke__*.json"))
    assert kept and all(artifact.load(p).status == "ok" for p in kept)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_resume_skips_only_valid_finished_seeds(tmp_path) -> None:
    rnd = resolve_round("smoke")
    tasks, skipped = plan_tasks(rnd, tmp_path, resume=True)
    assert (len(tasks), skipped) == (SMOKE_CELLS, 0)
    assert {t.key for t in tasks} == {(p, s) for p in rnd.probes for s in rnd.seeds}
    assert all(t.probe is rnd.probe(t.probe.id) for t in tasks)  # knobs travel with the probe
    (tmp_path / artifact.artifact_name("smoke", "core", 1)).write_text('{"truncated": ')
    tasks, skipped = plan_tasks(rnd, tmp_path, resume=True)
    assert skipped == 0  # a broken artifact is retrained, not trusted


def test_resume_retrains_seeds_whose_recorded_settings_the_round_no_longer_has(tmp_path) -> None:
    rnd = resolve_round("smoke")
    core = rnd.probe("core")
    recorded = {
        "config": core.knobs.model_dump(mode="json"),
        "fixture": rnd.fixture.model_dump(mode="json"),
    }
    current = make_result("core", 1, round_id="smoke").model_copy(update=recorded)
    artifact.save(current, tmp_path)
    assert plan_tasks(rnd, tmp_path, resume=True)[1] == 1  # today's settings: kept
    stale = current.model_copy(
        update={"config": {**current.config, "steps": core.knobs.steps // 2}}
    )
    artifact.save(stale, tmp_path)
    tasks, skipped = plan_tasks(rnd, tmp_path, resume=True)
    assert skipped == 0 and ("core", 1) in {t.key for t in tasks}
    other_trainer = current.model_copy(update={"trainer": "reference"})
    artifact.save(other_trainer, tmp_path)
    assert plan_tasks(rnd, tmp_path, resume=True)[1] == 0
    other_rows = current.model_copy(update={"fixture": {**current.fixture, "repeat": 32}})
    artifact.save(other_rows, tmp_path)
    assert plan_tasks(rnd, tmp_path, resume=True)[1] == 0
    # A plugin's options change what it trains: a seed given other options is retrained too.
    other_options = current.model_copy(update={"options": {"mode": "defaults"}})
    artifact.save(other_options, tmp_path)
    assert plan_tasks(rnd, tmp_path, resume=True)[1] == 0


def test_pad_boundary_round_reports_the_structural_divergence(tmp_path) -> None:
    out = tmp_path / "pad"
    proc = start_run("--round", "pad-boundary", "--workers", "2", out=out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr + stdout
    report = json.loads((out / "report.json").read_text())
    probes = {p["id"]: p for p in report["probes"]}
    assert "structural divergence at step 1: batch shape (6, 32) vs (6, 33)" in stdout
    for seed in probes["pad-multiple"]["seeds"]:
        assert seed["trace"] == "diverges" and seed["divergence_step"] == 1
    assert all(s["trace"] == "identical" for s in probes["core"]["seeds"])


def test_fixture_path_prints_a_loadable_model_directory() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mlx_parity", "fixture", "path"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    path = Path(out.stdout.strip())
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    from mlx_lm import load

    model, tokenizer = load(str(path))
    assert len(model.layers) == 18 and tokenizer.eos_token_id is not None


def test_readme_main_command_runs_the_demo_round(tmp_path) -> None:
    """`mlx-parity run --round demo`: completes on 2 cores and prints the probe table."""
    out = tmp_path / "demo"
    proc = start_run("--round", "demo", "--workers", "2", out=out, quiet=False)
    stdout, stderr = proc.communicate(timeout=1200)
    assert proc.returncode == 0, stderr + stdout
    assert "round demo: passed" in stdout
    # stderr is a pipe here, as in a CI log: a line per seed as it ends, no redrawn bar.
    demo = resolve_round("demo")
    finished = re.findall(r"^  (\S+) +seed +(\d+)  ok ", stderr, re.MULTILINE)
    assert sorted(finished) == sorted((p, str(s)) for p in demo.probes for s in demo.seeds)
    assert "\r" not in stderr and "step/s" not in stderr
    for probe in ("reference", "core", "clip-legacy", "pad-multiple", "mask-exclusive"):
        assert re.search(rf"^{probe}  ", stdout, re.MULTILINE)
    report = json.loads((out / "report.json").read_text())
    baseline = next(p for p in report["probes"] if p["id"] == "reference")
    passes = sum(bool(s["passed"]) for s in baseline["seeds"])
    assert 0 < passes < len(baseline["seeds"])  # the fixture is tuned not to saturate
