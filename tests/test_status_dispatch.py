"""``mlx-parity status`` and ``mlx-parity dispatch`` against a real HTTP server on loopback.

Request bodies are validated against GitHub's own request models (githubkit-schemas) and the fake
server's answers against GitHub's response models, with the helpers of test_github_client.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from githubkit_schemas.v2022_11_28 import models as gh
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from helpers import (
    OWNER,
    REPO,
    REPO_PATH,
    RUN_ID,
    SHA,
    TOKEN,
    assert_api_headers,
    check_run_response,
    collect,
    conforming,
    full_round,
    github_error,
    make_result,
    make_round,
    requests_to,
    sent_json,
    status_response,
)
from mlx_parity.cli import main
from mlx_parity.collect.report import report_json
from mlx_parity.github.limits import CHECK_SUMMARY_LIMIT
from mlx_parity.github.statuses import READ_ONLY_EXPLANATION

MATRIX = Path(__file__).resolve().parent.parent / "matrix"
STATUSES_PATH = f"{REPO_PATH}/statuses/{SHA}"
CHECK_RUNS_PATH = f"{REPO_PATH}/check-runs"
DISPATCH_PATH = f"{REPO_PATH}/actions/workflows/mlx-parity.yml/dispatches"
RUN_URL = f"https://github.com/{OWNER}/{REPO}/actions/runs/{RUN_ID}"

# What the report below posts: one status per probe and the round's own, qualified by round.
CONTEXTS = ["mlx-parity/T1/reference", "mlx-parity/T1/core", "mlx-parity/T1"]
HEAD_SHA = "c0ffee" + "0" * 34


# Every test here talks to the loopback server: an unmatched request fails the test.
pytestmark = pytest.mark.usefixtures("strict_server")


@pytest.fixture
def actions(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    """A pull_request job's environment, its API pointed at the loopback server."""
    for name in list(os.environ):
        if name.startswith("GITHUB_") or name == "MLX_PARITY_MATRIX":
            monkeypatch.delenv(name)
    summary = tmp_path / "step_summary.md"
    variables = {
        "GITHUB_API_URL": httpserver.url_for("/"),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_SHA": SHA,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_RUN_ID": str(RUN_ID),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return {"summary": summary}


def write_report(tmp_path: Path) -> Path:
    """A real round report: reference and core over 2 seeds, core's seed 7 failing the smoke
    gate (so the round fails)."""
    round_ = make_round(seeds=(1, 7))
    artifacts = tmp_path / "artifacts"
    full_round(artifacts, round_, {("core", 7): make_result("core", 7, cf_loss=0.7)})
    report = tmp_path / "report.json"
    report.write_text(report_json(collect(artifacts, round_)), encoding="utf-8")
    return report


def report_statuses(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["statuses"]


def status_handler(request: Request) -> Response:
    body = conforming(gh.ReposOwnerRepoStatusesShaPostBody, sent_json(request))
    assert_api_headers(request)
    return Response(json.dumps(status_response(body)), 201, content_type="application/json")


def check_run_handler(request: Request) -> Response:
    body = conforming(gh.ReposOwnerRepoCheckRunsPostBodyOneof0, sent_json(request))
    assert_api_headers(request)
    return Response(json.dumps(check_run_response(body)), 201, content_type="application/json")


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


# --- status ---------------------------------------------------------------------------------


def test_status_posts_one_status_per_probe_plus_the_overall_one(
    httpserver: HTTPServer, actions, tmp_path: Path, capsys
) -> None:
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_handler(status_handler)
    report = write_report(tmp_path)
    assert main(["status", "--report", str(report)]) == 0
    bodies = [sent_json(request) for request in requests_to(httpserver, STATUSES_PATH)]
    assert [(b["context"], b["state"]) for b in bodies] == [
        ("mlx-parity/T1/reference", "success"),
        ("mlx-parity/T1/core", "failure"),
        ("mlx-parity/T1", "failure"),
    ]
    assert all(body["target_url"] == RUN_URL for body in bodies)
    assert [b["description"] for b in bodies] == [s["description"] for s in report_statuses(report)]
    captured = capsys.readouterr()
    assert f"posted 3 commit statuses on {SHA}" in captured.out
    assert_no_token(captured.out, captured.err)
    assert not actions["summary"].exists()


def test_read_only_token_explains_in_the_summary_and_exits_0(
    httpserver: HTTPServer, actions, tmp_path: Path, capsys
) -> None:
    refusal = github_error(
        "Resource not accessible by integration",
        "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
    )
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_json(refusal, status=403)
    report = write_report(tmp_path)
    markdown = tmp_path / "report.md"
    markdown.write_text("| probe | verdict |\n", encoding="utf-8")

    code = main(["status", "--report", str(report), "--check-run", "--markdown", str(markdown)])

    assert code == 0
    # GitHub refused the first status; nothing more was tried, not even the check run.
    assert len(requests_to(httpserver, STATUSES_PATH)) == 1
    assert not requests_to(httpserver, CHECK_RUNS_PATH)
    summary = actions["summary"].read_text(encoding="utf-8")
    assert READ_ONLY_EXPLANATION in summary and "check run skipped" in summary
    captured = capsys.readouterr()
    assert READ_ONLY_EXPLANATION in captured.out
    assert_no_token(summary, captured.out, captured.err)


def test_a_refused_status_outside_a_pull_request_fails_naming_the_permission(
    httpserver: HTTPServer, actions, tmp_path: Path, monkeypatch, capsys
) -> None:
    # On a push the token is the workflow's own: a 403 means its permissions lack statuses.
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    refusal = github_error("Resource not accessible by integration")
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_json(refusal, status=403)
    assert main(["status", "--report", str(write_report(tmp_path))]) == 3
    captured = capsys.readouterr()
    assert "GitHub did not take the round's results" in captured.err
    assert "permissions: statuses: write" in captured.err
    assert "read-only token" not in captured.out + captured.err
    assert not actions["summary"].exists()


def test_a_refused_check_run_outside_a_pull_request_fails_naming_the_permission(
    httpserver: HTTPServer, actions, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GITHUB_EVENT_NAME", "workflow_dispatch")
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_handler(status_handler)
    httpserver.expect_request(CHECK_RUNS_PATH, method="POST").respond_with_json(
        github_error("Resource not accessible by integration"), status=403
    )
    markdown = tmp_path / "report.md"
    markdown.write_text("| probe |\n", encoding="utf-8")
    args = ["status", "--report", str(write_report(tmp_path)), "--check-run"]
    assert main([*args, "--markdown", str(markdown)]) == 3
    err = capsys.readouterr().err
    assert "did not create the check run" in err and "permissions: checks: write" in err
    assert not actions["summary"].exists()


def test_a_check_run_lost_to_a_5xx_may_exist_so_the_message_says_to_look_first(
    httpserver: HTTPServer, actions, tmp_path: Path, capsys
) -> None:
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_handler(status_handler)
    httpserver.expect_request(CHECK_RUNS_PATH, method="POST").respond_with_json(
        github_error("Server Error"), status=502
    )
    markdown = tmp_path / "report.md"
    markdown.write_text("| probe |\n", encoding="utf-8")
    args = ["status", "--report", str(write_report(tmp_path)), "--check-run"]
    assert main([*args, "--markdown", str(markdown)]) == 3
    err = capsys.readouterr().err
    assert "GitHub may have created the check run" in err and "did not" not in err
    assert "look at the commit's checks before running status again" in err
    assert len(requests_to(httpserver, CHECK_RUNS_PATH)) == 1


def test_missing_token_explains_without_a_request(
    httpserver: HTTPServer, actions, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    assert main(["status", "--report", str(write_report(tmp_path))]) == 0
    assert not httpserver.log
    assert "GITHUB_TOKEN is not set" in actions["summary"].read_text(encoding="utf-8")
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().out


def test_missing_sha_explains_without_a_request(
    httpserver: HTTPServer, actions, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("GITHUB_SHA")
    assert main(["status", "--report", str(write_report(tmp_path))]) == 0
    assert not httpserver.log
    assert "GITHUB_SHA is not set" in actions["summary"].read_text(encoding="utf-8")


def test_check_run_carries_the_markdown_report_cut_to_githubs_limit(
    httpserver: HTTPServer, actions, tmp_path: Path
) -> None:
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_handler(status_handler)
    httpserver.expect_oneshot_request(CHECK_RUNS_PATH, method="POST").respond_with_handler(
        check_run_handler
    )
    markdown = tmp_path / "report.md"
    report_text = "".join(f"| seed {i} | 0.1234 | 0.1234 |\n" for i in range(4000))
    assert len(report_text) > CHECK_SUMMARY_LIMIT
    markdown.write_text(report_text, encoding="utf-8")

    report = write_report(tmp_path)
    args = ["status", "--report", str(report), "--check-run"]
    assert main([*args, "--markdown", str(markdown)]) == 0

    (request,) = requests_to(httpserver, CHECK_RUNS_PATH)
    body = sent_json(request)
    assert body["name"] == "mlx-parity round T1"
    assert body["head_sha"] == SHA
    assert (body["status"], body["conclusion"]) == ("completed", "failure")
    assert body["details_url"] == RUN_URL
    assert body["output"]["title"] == report_statuses(report)[-1]["description"]
    assert body["output"]["title"].startswith("round T1: 1/")
    summary = body["output"]["summary"]
    assert len(summary) <= CHECK_SUMMARY_LIMIT
    # Cut at a line boundary (no half row), with a note naming the check-run limit.
    kept, note = summary.split("\n\n> ✂️ **Truncated:**")
    assert report_text.startswith(kept + "\n")
    assert "GitHub's 65,535-character check-run limit" in note


def test_check_run_needs_the_markdown_report(httpserver: HTTPServer, actions, tmp_path) -> None:
    assert main(["status", "--report", str(write_report(tmp_path)), "--check-run"]) == 2
    assert not httpserver.log


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"round_id": "smoke"}), "not a round report"),
        (json.dumps({"schema": "mlx-parity/round-report/v1"}), "invalid field"),
        (json.dumps([1]), "not a round report"),
    ],
)
def test_an_unusable_report_exits_2_before_any_request(
    httpserver: HTTPServer, actions, tmp_path: Path, capsys, content: str, message: str
) -> None:
    report = tmp_path / "report.json"
    report.write_text(content, encoding="utf-8")
    assert main(["status", "--report", str(report)]) == 2
    assert message in capsys.readouterr().err
    assert not httpserver.log


def test_a_missing_report_exits_2(httpserver: HTTPServer, actions, tmp_path, capsys) -> None:
    assert main(["status", "--report", str(tmp_path / "absent.json")]) == 2
    assert "cannot read the report" in capsys.readouterr().err
    assert not httpserver.log


def test_a_github_failure_other_than_permissions_fails_the_step(
    httpserver: HTTPServer, actions, tmp_path: Path, capsys
) -> None:
    # 422 is not retried (a 5xx would be, within the client's wait budget, on a status).
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_json(
        github_error("Validation Failed"), status=422
    )
    assert main(["status", "--report", str(write_report(tmp_path))]) == 3  # GitHub refused
    err = capsys.readouterr().err
    assert "GitHub did not take the round's results" in err and "422" in err
    assert_no_token(err)


# --- dispatch -------------------------------------------------------------------------------


def dispatch_handler(request: Request) -> Response:
    conforming(gh.ReposOwnerRepoActionsWorkflowsWorkflowIdDispatchesPostBody, sent_json(request))
    assert_api_headers(request)
    return Response(status=204)


def dispatch(*args: str) -> int:
    return main(["dispatch", *args, "--matrix", str(MATRIX)])


def test_dispatch_sends_the_round_and_its_filters(httpserver: HTTPServer, actions, capsys) -> None:
    httpserver.expect_oneshot_request(DISPATCH_PATH, method="POST").respond_with_handler(
        dispatch_handler
    )
    assert dispatch("--round", "smoke", "--probes", "core", "--seeds", "42") == 0
    (request,) = requests_to(httpserver, DISPATCH_PATH)
    assert sent_json(request) == {
        "ref": "main",
        "inputs": {"round_id": "smoke", "probes": "core", "seeds": "42"},
    }
    out = capsys.readouterr().out
    # core plus the baseline it is compared against, each on seed 42 and on seed 1, which plan
    # adds because the noise floor is measured on it.
    assert "round 'smoke', 2 cells, 4 seed runs" in out


def test_dispatch_without_filters_sends_empty_inputs_to_another_ref_and_workflow(
    httpserver: HTTPServer, actions
) -> None:
    path = f"{REPO_PATH}/actions/workflows/parity.yaml/dispatches"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(dispatch_handler)
    args = ("--round", "motivating", "--ref", "release/1.2", "--workflow", "parity.yaml")
    assert dispatch(*args) == 0
    assert sent_json(requests_to(httpserver, path)[0]) == {
        "ref": "release/1.2",
        "inputs": {"round_id": "motivating", "probes": "", "seeds": ""},
    }


def test_dispatch_defaults_to_the_workflow_the_matrix_settings_generate(
    httpserver: HTTPServer, actions, tmp_path: Path
) -> None:
    # `workflow generate` wrote parity-rounds.yml; mlx-parity.yml does not exist in the repository.
    matrix = shutil.copytree(MATRIX, tmp_path / "matrix")
    (matrix / "workflow.toml").write_text(
        '[workflow]\npath = ".github/workflows/parity-rounds.yml"\n', encoding="utf-8"
    )
    path = f"{REPO_PATH}/actions/workflows/parity-rounds.yml/dispatches"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(dispatch_handler)
    assert main(["dispatch", "--round", "smoke", "--matrix", str(matrix)]) == 0
    assert len(requests_to(httpserver, path)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--round", "nope"], "no round 'nope'"),
        (["--round", "$(id)"], "never has"),
        (["--round", "smoke", "--probes", "core;id"], "never has"),
        (["--round", "smoke", "--seeds", "1,99"], "has no seed 99"),
        (["--round", "smoke", "--ref", "main; id"], "--ref"),
        (["--round", "smoke", "--ref", "a..b"], "--ref"),
        (["--round", "smoke", "--workflow", "../evil.yml"], "--workflow"),
    ],
)
def test_dispatch_refuses_before_any_request(
    httpserver: HTTPServer, actions, capsys, args: list[str], message: str
) -> None:
    assert dispatch(*args) == 2
    assert message in capsys.readouterr().err
    assert not httpserver.log


def test_dispatch_without_a_token_is_a_usage_error(
    httpserver: HTTPServer, actions, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    assert dispatch("--round", "smoke") == 2
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().err
    assert not httpserver.log


def test_dispatch_refused_by_github_exits_3(httpserver: HTTPServer, actions, capsys) -> None:
    refusal = github_error('Unexpected inputs provided: ["seeds"]')
    httpserver.expect_oneshot_request(DISPATCH_PATH, method="POST").respond_with_json(
        refusal, status=422
    )
    assert dispatch("--round", "smoke") == 3
    err = capsys.readouterr().err
    assert "GitHub did not start the round" in err and "Unexpected inputs" in err
    assert_no_token(err)


def test_dispatch_lost_to_a_5xx_may_have_started_so_the_message_says_to_look_first(
    httpserver: HTTPServer, actions, capsys
) -> None:
    # GitHub may have acted before it failed to answer: "did not start" would invite a second.
    httpserver.expect_request(DISPATCH_PATH, method="POST").respond_with_json(
        github_error("Server Error"), status=502
    )
    assert dispatch("--round", "smoke") == 3
    err = capsys.readouterr().err
    assert "GitHub may have started the round" in err and "did not start" not in err
    assert f"check https://github.com/{OWNER}/{REPO}/actions before dispatching it again" in err
    assert len(requests_to(httpserver, DISPATCH_PATH)) == 1


def test_on_a_pull_request_statuses_and_check_run_go_on_the_head_commit(
    httpserver: HTTPServer, actions, tmp_path: Path, monkeypatch
) -> None:
    """GITHUB_SHA is the merge commit on pull_request events; the PR shows its head commit."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": HEAD_SHA}}}), encoding="utf-8")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    head_statuses = f"{REPO_PATH}/statuses/{HEAD_SHA}"
    httpserver.expect_request(head_statuses, method="POST").respond_with_handler(status_handler)
    httpserver.expect_request(CHECK_RUNS_PATH, method="POST").respond_with_handler(
        check_run_handler
    )
    markdown = tmp_path / "report.md"
    markdown.write_text("| probe |\n", encoding="utf-8")
    report = write_report(tmp_path)
    assert (
        main(["status", "--report", str(report), "--check-run", "--markdown", str(markdown)]) == 0
    )
    contexts = [sent_json(r)["context"] for r in requests_to(httpserver, head_statuses)]
    assert contexts == CONTEXTS
    (check_run,) = requests_to(httpserver, CHECK_RUNS_PATH)
    assert sent_json(check_run)["head_sha"] == HEAD_SHA
    assert not requests_to(httpserver, STATUSES_PATH)  # nothing on the merge commit


def test_a_pull_request_event_without_a_head_sha_is_refused(
    httpserver: HTTPServer, actions, tmp_path: Path, monkeypatch, capsys
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {}}), encoding="utf-8")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    assert main(["status", "--report", str(write_report(tmp_path))]) == 2
    assert "pull_request.head.sha" in capsys.readouterr().err
    assert not httpserver.log
