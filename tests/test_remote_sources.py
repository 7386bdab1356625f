"""compare and explain take a workflow run's artifacts, fetched from a loopback GitHub API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from helpers import (
    OWNER,
    REPO,
    REPO_PATH,
    artifact,
    artifact_page,
    collect,
    full_round,
    make_result,
    make_round,
    trace,
    zip_bytes,
)
from mlx_parity.cell import run_cell
from mlx_parity.cli import main
from mlx_parity.collect.report import report_json
from mlx_parity.fixture import SMOKE
from mlx_parity.knobs import Knobs
from mlx_parity.matrix import ResolvedProbe
from mlx_parity.probes import BUILTIN_PROBES
from mlx_parity.trainers import lookup


@pytest.fixture
def github_env(monkeypatch, httpserver: HTTPServer) -> HTTPServer:
    monkeypatch.setenv("GITHUB_API_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("GITHUB_REPOSITORY", f"{OWNER}/{REPO}")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_dummytoken")
    return httpserver


def serve_run(server: HTTPServer, run_id: int, artifacts: dict[str, dict[str, bytes]]) -> None:
    """The run's artifact list, and each artifact's zip behind a 302 like GitHub's."""
    listed = []
    for index, (name, members) in enumerate(artifacts.items()):
        artifact_id = run_id * 100 + index
        listed.append(artifact(server, artifact_id, name))
        zip_path = f"{REPO_PATH}/actions/artifacts/{artifact_id}/zip"
        blob = f"/blobs/{artifact_id}.zip"
        server.expect_request(zip_path).respond_with_data(
            "", status=302, headers={"Location": server.url_for(blob)}
        )
        server.expect_request(blob).respond_with_data(zip_bytes(members))
    server.expect_request(f"{REPO_PATH}/actions/runs/{run_id}/artifacts").respond_with_json(
        artifact_page(listed, len(listed))
    )


def report_bytes(tmp_path: Path, name: str, overrides=None) -> bytes:
    rnd = make_round()
    directory = tmp_path / name
    full_round(directory, rnd, overrides)
    return report_json(collect(directory, rnd)).encode()


def test_compare_takes_run_ids(github_env, tmp_path, capsys) -> None:
    same = report_bytes(tmp_path, "a")
    moved = trace(7)
    moved[2] += 0.25
    changed = report_bytes(tmp_path, "b", {("core", 7): make_result("core", 7, losses=moved)})
    serve_run(github_env, 11, {"parity-report": {"report.json": same}})
    serve_run(github_env, 12, {"parity-report": {"report.json": same}})
    serve_run(github_env, 13, {"parity-report": {"report.json": changed}})
    assert main(["compare", "run:11", "run:12"]) == 0
    assert "no change detected" in capsys.readouterr().out
    assert main(["compare", "run:11", "run:13"]) == 4  # a difference found
    assert "core" in capsys.readouterr().out


def test_compare_reports_a_run_without_a_report(github_env, capsys) -> None:
    serve_run(github_env, 14, {"seed-results-x": {"a.json": b"{}"}})
    assert main(["compare", "run:14", "run:14"]) == 2
    assert "no 'parity-report' artifact" in capsys.readouterr().err


def test_compare_says_a_runs_report_has_expired(github_env, capsys) -> None:
    # GitHub still lists an artifact after its retention period, marked expired.
    listed = [artifact(github_env, 1500, "parity-report", expired=True)]
    github_env.expect_request(f"{REPO_PATH}/actions/runs/15/artifacts").respond_with_json(
        artifact_page(listed, len(listed))
    )
    assert main(["compare", "run:15", "run:15"]) == 3
    err = capsys.readouterr().err
    assert "run 15: 'parity-report' expired" in err
    assert "no 'parity-report' artifact" not in err


def test_explain_takes_a_run_id(github_env, tmp_path, model_source, capsys) -> None:
    knobs = Knobs(steps=3, max_new_tokens=2, padding="multiple")
    probe = ResolvedProbe(BUILTIN_PROBES["core"], lookup("core"), knobs, "any")
    results = run_cell("remote", probe, SMOKE, [1], tmp_path / "cell", source=model_source)
    files = {p.name: p.read_bytes() for p in (tmp_path / "cell").glob("*.json")}
    serve_run(github_env, 21, {"seed-results-remote-core-0": files})
    assert results[0].status == "ok"
    # The smoke row is 13 tokens, so "multiple" padding moves no loss; the batch shape it
    # recorded still shows it, and names it.
    assert main(["explain", "run:21", "--quiet", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "behaves like core with padding=multiple (bit for bit, seeds 1)" in out
    assert "from step 1: batch shape (6, 32) vs (6, 33)" in out
