"""The GitHub client against a real HTTP server on loopback, checked with GitHub's own schemas.

Every request body the client sends is validated against the request model GitHub's REST
description defines for that endpoint (via ``githubkit-schemas``, for the API version the client
asks for), and every body the fake server returns validates against GitHub's response model, so the
fake cannot drift into a shape GitHub never sends. Undeclared keys count as failures both ways.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from githubkit_schemas.v2022_11_28 import models as gh
from pytest_httpserver import HTTPServer
from requests.structures import CaseInsensitiveDict
from werkzeug import Request, Response

from helpers import (
    NOW,
    OWNER,
    REPO,
    REPO_PATH,
    RUN_ID,
    SHA,
    TOKEN,
    artifact,
    artifact_page,
    assert_api_headers,
    check_run_response,
    conforming,
    github_error,
    requests_to,
    sent_json,
    status_response,
    zip_bytes,
)
from mlx_parity.errors import UsageError
from mlx_parity.github.client import GitHubClient
from mlx_parity.github.env import GitHubContext, read_github_context
from mlx_parity.github.errors import (
    ArtifactExpired,
    GitHubError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthorized,
    Unreachable,
    UnsafeArchive,
    ValidationFailed,
)
from mlx_parity.github.limits import CHECK_SUMMARY_LIMIT, STATUS_DESCRIPTION_LIMIT
from mlx_parity.github.models import Artifact, CommitStatus
from mlx_parity.github.retry import MINIMUM_WAIT, SECONDARY_LIMIT_WAIT, rate_limit_wait
from mlx_parity.github.statuses import READ_ONLY_EXPLANATION, post_statuses_or_explain

# -- GitHub's schemas ------------------------------------------------------------------------------


# -- fixtures --------------------------------------------------------------------------------------


# Every test here talks to the loopback server: an unmatched request fails the test.
pytestmark = pytest.mark.usefixtures("strict_server")


@pytest.fixture
def context(httpserver: HTTPServer) -> GitHubContext:
    return GitHubContext.from_env(
        {
            "GITHUB_API_URL": httpserver.url_for("/"),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
            "GITHUB_SHA": SHA,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_RUN_ID": str(RUN_ID),
            "GITHUB_EVENT_NAME": "pull_request",
        }
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(context: GitHubContext, sleeps: list[float]) -> GitHubClient:
    return GitHubClient(context, sleep=sleeps.append, clock=lambda: NOW)


# -- the environment -------------------------------------------------------------------------------


def test_context_reads_github_variables_and_hides_the_token(tmp_path: Path) -> None:
    context = GitHubContext.from_env(
        {
            "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
            "GITHUB_SERVER_URL": "https://ghe.example.com",
            "GITHUB_REPOSITORY": "octo-org/parity",
            "GITHUB_SHA": SHA,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_RUN_ID": "123",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "UNRELATED": "ignored",
        }
    )
    assert context.api_url == "https://ghe.example.com/api/v3"
    assert (context.owner, context.repo, context.run_id) == ("octo-org", "parity", 123)
    assert context.run_url == "https://ghe.example.com/octo-org/parity/actions/runs/123"
    assert context.step_summary == tmp_path / "summary.md"
    assert context.event_name == "workflow_dispatch"
    for text in (repr(context), str(context), context.model_dump_json(), f"{context!r}"):
        assert TOKEN not in text
    assert context.token_value() == TOKEN


def test_context_outside_actions_has_defaults_and_empty_means_unset() -> None:
    context = GitHubContext.from_env({"GITHUB_TOKEN": "", "GITHUB_RUN_ID": ""})
    assert context.api_url == "https://api.github.com"
    assert context.token is None and context.run_id is None
    assert context.run_url is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GITHUB_API_URL", "not a url"),
        ("GITHUB_API_URL", "ftp://example.com"),
        ("GITHUB_SERVER_URL", "github.com"),
        ("GITHUB_SHA", "xyz"),
        ("GITHUB_SHA", SHA[:7]),
    ],
)
def test_a_variable_github_would_never_set_so_is_refused_by_name(variable, value) -> None:
    # Refused at once with the variable named, not inside the HTTP library after retries.
    with pytest.raises(UsageError, match=rf"^\${variable} is not valid: "):
        read_github_context({variable: value})


def test_a_server_that_never_answers_is_given_up_on_within_the_budget(
    httpserver: HTTPServer, context: GitHubContext, sleeps: list[float]
) -> None:
    answered = threading.Event()

    def hang(request: Request) -> Response:
        answered.wait(timeout=10)  # until the client gave up: it must not wait this long
        return Response(status=201)

    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_request(path, method="POST").respond_with_handler(hang)
    client = GitHubClient(context, max_total_wait=2.5, sleep=sleeps.append, timeout=1.0)
    tic = time.monotonic()
    with pytest.raises(Unreachable, match="budget"):
        client.post_status(SHA, "success", "mlx-parity/core")
    # Waiting on answers counts: 1 s, a 1 s backoff, then at most the 1 s left of the budget.
    assert sleeps == [1.0] and time.monotonic() - tic < 2.5
    answered.set()  # free the server, and let it answer both requests before the next test
    deadline = time.monotonic() + 10
    while len(httpserver.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)


# -- commit statuses -------------------------------------------------------------------------------


def test_post_status_sends_githubs_request_body(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"

    def handler(request: Request) -> Response:
        body = conforming(gh.ReposOwnerRepoStatusesShaPostBody, sent_json(request))
        assert_api_headers(request)
        return Response(json.dumps(status_response(body)), 201, content_type="application/json")

    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(handler)
    posted = client.post_status(
        SHA,
        "success",
        "mlx-parity/reference",
        "15/15 pass; trace identical",
        "https://github.com/octo-org/parity/actions/runs/4242",
    )
    assert posted.state == "success" and posted.context == "mlx-parity/reference"
    assert sent_json(requests_to(httpserver, path)[0]) == {
        "state": "success",
        "context": "mlx-parity/reference",
        "description": "15/15 pass; trace identical",
        "target_url": "https://github.com/octo-org/parity/actions/runs/4242",
    }


def test_status_description_is_cut_to_140_characters_with_an_ellipsis(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"

    def handler(request: Request) -> Response:
        body = conforming(gh.ReposOwnerRepoStatusesShaPostBody, sent_json(request))
        return Response(json.dumps(status_response(body)), 201, content_type="application/json")

    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(handler)
    client.post_status(SHA, "failure", "mlx-parity/core", "x" * 300)
    description = sent_json(requests_to(httpserver, path)[0])["description"]
    assert len(description) == STATUS_DESCRIPTION_LIMIT
    assert description == "x" * 139 + "…"


def test_status_with_an_unknown_state_is_refused_before_sending(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    with pytest.raises(InvalidRequest, match="state"):
        client.post_status(SHA, "green", "mlx-parity/core")  # type: ignore[arg-type]
    assert not httpserver.log


# -- check runs ------------------------------------------------------------------------------------


def _check_run_handler(request: Request) -> Response:
    body = sent_json(request)
    conforming(gh.ReposOwnerRepoCheckRunsPostBodyOneof0, body)
    assert_api_headers(request)
    return Response(json.dumps(check_run_response(body)), 201, content_type="application/json")


def test_create_check_run(httpserver: HTTPServer, client: GitHubClient) -> None:
    path = f"{REPO_PATH}/check-runs"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(_check_run_handler)
    run = client.create_check_run(
        "mlx-parity round BO", SHA, "neutral", "8/15 vs 10/15: within seed noise", "| probe |"
    )
    assert (run.id, run.conclusion, run.name) == (77, "neutral", "mlx-parity round BO")
    body = sent_json(requests_to(httpserver, path)[0])
    assert body["status"] == "completed"
    assert body["output"] == {"title": "8/15 vs 10/15: within seed noise", "summary": "| probe |"}


def test_check_run_summary_over_the_limit_is_cut_with_a_visible_note(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    path = f"{REPO_PATH}/check-runs"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(_check_run_handler)
    report = "".join(f"| seed {i} | 0.1234 |\n" for i in range(5000))
    assert len(report) > CHECK_SUMMARY_LIMIT
    client.create_check_run("mlx-parity", SHA, "failure", "report", report)
    summary = sent_json(requests_to(httpserver, path)[0])["output"]["summary"]
    # GitHub's request model enforces the same limit (max_length=65535) in the handler.
    assert CHECK_SUMMARY_LIMIT - 5 < len(summary) <= CHECK_SUMMARY_LIMIT
    assert "Summary truncated" in summary and f"of {len(report):,} characters" in summary
    assert report.startswith(summary[: summary.index("\n\n…")])


# -- artifacts -------------------------------------------------------------------------------------


def test_list_run_artifacts_follows_the_link_header_across_pages(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    path = f"{REPO_PATH}/actions/runs/{RUN_ID}/artifacts"
    page_one = [artifact(httpserver, 1, "BO-reference-s0"), artifact(httpserver, 2, "BO-core-s0")]
    page_two = [artifact(httpserver, 3, "BO-core-s1", expired=True)]
    next_url = httpserver.url_for(path) + "?per_page=100&page=2"
    httpserver.expect_oneshot_request(
        path, method="GET", query_string={"per_page": "100"}
    ).respond_with_json(
        artifact_page(page_one, total=3),
        headers={"Link": f'<{next_url}>; rel="next", <{next_url}>; rel="last"'},
    )
    httpserver.expect_oneshot_request(
        path, method="GET", query_string={"per_page": "100", "page": "2"}
    ).respond_with_json(artifact_page(page_two, total=3))

    artifacts = client.list_run_artifacts()

    assert [(a.id, a.name, a.expired) for a in artifacts] == [
        (1, "BO-reference-s0", False),
        (2, "BO-core-s0", False),
        (3, "BO-core-s1", True),
    ]
    assert artifacts[0].size_in_bytes == 1025
    assert artifacts[0].archive_download_url.endswith(f"{REPO_PATH}/actions/artifacts/1/zip")
    for request in requests_to(httpserver, path):
        assert_api_headers(request)


def test_download_follows_the_redirect_without_the_token_and_unzips(
    httpserver: HTTPServer, client: GitHubClient, tmp_path: Path
) -> None:
    archive_path = f"{REPO_PATH}/actions/artifacts/7/zip"
    storage_path = "/storage/blobs/7.zip"
    signed_url = httpserver.url_for(storage_path) + "?sig=short-lived-signature&se=2026-05-28"
    httpserver.expect_oneshot_request(archive_path, method="GET").respond_with_data(
        "", status=302, headers={"Location": signed_url}
    )
    results = {
        "BO/core/seed-1.json": b'{"seed": 1}',
        "BO/core/seed-7.json": b'{"seed": 7}',
    }
    httpserver.expect_oneshot_request(storage_path, method="GET").respond_with_data(
        zip_bytes(results), content_type="application/zip"
    )
    listed = conforming(gh.Artifact, artifact(httpserver, 7, "BO-core-s0"))

    written = client.download_artifact(client_artifact(listed), tmp_path / "downloads")

    assert sorted(p.relative_to(tmp_path / "downloads").as_posix() for p in written) == sorted(
        results
    )
    assert (tmp_path / "downloads/BO/core/seed-7.json").read_bytes() == b'{"seed": 7}'
    (api_request,) = requests_to(httpserver, archive_path)
    (storage_request,) = requests_to(httpserver, storage_path)
    assert_api_headers(api_request)
    assert "Authorization" not in storage_request.headers
    assert TOKEN not in str(dict(storage_request.headers))
    assert storage_request.args["sig"] == "short-lived-signature"


def client_artifact(listed: dict[str, Any]) -> Artifact:
    return Artifact.model_validate(listed)


@pytest.mark.parametrize(
    "evil_name",
    ["../escaped.json", "nested/../../escaped.json", "/abs/escaped.json", "C:/escaped.json"],
)
def test_download_refuses_archives_that_write_outside_the_destination(
    httpserver: HTTPServer, client: GitHubClient, tmp_path: Path, evil_name: str
) -> None:
    archive_path = f"{REPO_PATH}/actions/artifacts/8/zip"
    httpserver.expect_oneshot_request(archive_path).respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/storage/8.zip")}
    )
    httpserver.expect_oneshot_request("/storage/8.zip").respond_with_data(
        zip_bytes({"ok.json": b"{}", evil_name: b"pwned"})
    )
    dest = tmp_path / "inside" / "dest"
    with pytest.raises(UnsafeArchive, match="refusing"):
        client.download_artifact(client_artifact(artifact(httpserver, 8, "evil")), dest)
    # Checked before writing anything: not even the harmless member was extracted.
    assert not any(dest.rglob("*"))
    assert not list(tmp_path.rglob("escaped.json"))


def test_expired_artifacts_are_refused_without_a_request(
    httpserver: HTTPServer, client: GitHubClient, tmp_path: Path
) -> None:
    expired = client_artifact(artifact(httpserver, 9, "old", expired=True))
    with pytest.raises(ArtifactExpired):
        client.download_artifact(expired, tmp_path)
    assert not httpserver.log


def test_the_token_is_not_sent_to_an_archive_url_outside_the_api(
    httpserver: HTTPServer, client: GitHubClient, tmp_path: Path
) -> None:
    foreign = client_artifact(
        {**artifact(httpserver, 10, "x"), "archive_download_url": "https://evil.example/a.zip"}
    )
    with pytest.raises(GitHubError, match="refusing to send the token"):
        client.download_artifact(foreign, tmp_path)
    assert not httpserver.log


# -- workflow dispatch -----------------------------------------------------------------------------


def test_dispatch_workflow(httpserver: HTTPServer, client: GitHubClient) -> None:
    path = f"{REPO_PATH}/actions/workflows/mlx-parity.yml/dispatches"

    def handler(request: Request) -> Response:
        conforming(
            gh.ReposOwnerRepoActionsWorkflowsWorkflowIdDispatchesPostBody, sent_json(request)
        )
        assert_api_headers(request)
        return Response(status=204)

    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(handler)
    inputs = {"round_id": "BO", "probes": "reference,core"}
    assert client.dispatch_workflow("mlx-parity.yml", "main", inputs) is None
    assert sent_json(requests_to(httpserver, path)[0]) == {"ref": "main", "inputs": inputs}


def test_dispatch_reads_run_details_when_the_server_returns_them(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    path = f"{REPO_PATH}/actions/workflows/mlx-parity.yml/dispatches"
    details = conforming(
        gh.WorkflowDispatchResponse,
        {
            "workflow_run_id": 99,
            "run_url": f"https://api.github.com{REPO_PATH}/actions/runs/99",
            "html_url": f"https://github.com/{OWNER}/{REPO}/actions/runs/99",
        },
    )
    httpserver.expect_oneshot_request(path, method="POST").respond_with_json(details)
    run = client.dispatch_workflow("mlx-parity.yml", "main")
    assert run is not None and run.workflow_run_id == 99


def test_dispatch_refuses_more_than_25_inputs(httpserver: HTTPServer, client: GitHubClient) -> None:
    inputs = {f"input_{i}": str(i) for i in range(26)}
    with pytest.raises(InvalidRequest, match="at most 25 inputs"):
        client.dispatch_workflow("mlx-parity.yml", "main", inputs)
    assert not httpserver.log


def test_dispatch_is_not_repeated_after_a_502(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    # The 502 may hide a dispatch that happened; a second POST could start a second round.
    path = f"{REPO_PATH}/actions/workflows/mlx-parity.yml/dispatches"
    httpserver.expect_request(path, method="POST").respond_with_json(
        github_error("Server Error"), status=502
    )
    with pytest.raises(ServerError):
        client.dispatch_workflow("mlx-parity.yml", "main", {"round_id": "BO"})
    assert len(requests_to(httpserver, path)) == 1 and sleeps == []


# -- retries ---------------------------------------------------------------------------------------


def _status_handler(request: Request) -> Response:
    body = conforming(gh.ReposOwnerRepoStatusesShaPostBody, sent_json(request))
    return Response(json.dumps(status_response(body)), 201, content_type="application/json")


def test_a_502_is_retried_after_a_backoff(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_data(
        "<html>Bad Gateway</html>", status=502, content_type="text/html"
    )
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(_status_handler)
    assert client.post_status(SHA, "pending", "mlx-parity/core").state == "pending"
    assert sleeps == [1.0]
    assert len(requests_to(httpserver, path)) == 2


def test_a_secondary_rate_limit_waits_for_retry_after(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_json(
        github_error(
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
            "again.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        ),
        status=403,
        headers={"retry-after": "7", "x-ratelimit-remaining": "4990"},
    )
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(_status_handler)
    client.post_status(SHA, "success", "mlx-parity/core")
    assert sleeps == [7.0]


def test_a_429_waits_until_the_rate_limit_resets(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_json(
        github_error("API rate limit exceeded for installation ID 1."),
        status=429,
        headers={
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(NOW) + 30),
        },
    )
    httpserver.expect_oneshot_request(path, method="POST").respond_with_handler(_status_handler)
    client.post_status(SHA, "success", "mlx-parity/core")
    # 30 s until the reset, plus one second so we do not arrive before GitHub's clock does.
    assert sleeps == [31.0]


SECONDARY_LIMIT = github_error(
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
)


@pytest.mark.parametrize(("status", "message"), [(403, SECONDARY_LIMIT), (429, {})])
def test_a_rate_limit_without_retry_after_waits_a_minute_once(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float], status: int, message: dict
) -> None:
    # GitHub: with neither retry-after nor a reset time, wait at least a minute. The default
    # budget must leave room for that one wait, or such a limit would never be retried.
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_ordered_request(path, method="POST").respond_with_json(message, status=status)
    httpserver.expect_ordered_request(path, method="POST").respond_with_handler(_status_handler)
    client.post_status(SHA, "success", "mlx-parity/core")
    assert sleeps == [SECONDARY_LIMIT_WAIT]


def test_a_second_secondary_limit_in_a_row_gives_up(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_request(path, method="POST").respond_with_json(SECONDARY_LIMIT, status=403)
    with pytest.raises(RateLimited, match="budget"):
        client.post_status(SHA, "success", "mlx-parity/core")
    assert sleeps == [SECONDARY_LIMIT_WAIT] and len(requests_to(httpserver, path)) == 2


def test_persistent_5xx_gives_up_when_the_wait_budget_is_spent(
    httpserver: HTTPServer, context: GitHubContext, sleeps: list[float]
) -> None:
    client = GitHubClient(context, max_total_wait=5.0, sleep=sleeps.append, clock=lambda: NOW)
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_request(path, method="POST").respond_with_json(
        github_error("Service Unavailable"), status=503
    )
    with pytest.raises(ServerError, match="budget") as raised:
        client.post_status(SHA, "success", "mlx-parity/core")
    # 1 + 2 slept; the next 4 s would pass the 5 s budget, so it raises instead of sleeping.
    assert sleeps == [1.0, 2.0]
    assert raised.value.status == 503
    assert len(requests_to(httpserver, path)) == 3


def test_a_rate_limit_longer_than_the_budget_raises_rate_limited_without_sleeping(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/actions/runs/{RUN_ID}/artifacts"
    httpserver.expect_request(path).respond_with_json(
        github_error("API rate limit exceeded"),
        status=403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3600)},
    )
    with pytest.raises(RateLimited) as raised:
        client.list_run_artifacts()
    assert sleeps == []
    assert raised.value.retry_after == 3601.0 and raised.value.status == 403


def test_an_unreachable_api_is_retried_then_reported(
    context: GitHubContext, sleeps: list[float]
) -> None:
    # A port that was just free: connecting is refused at once, no timeout involved.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    offline = context.model_copy(update={"api_url": f"http://127.0.0.1:{free_port}"})
    client = GitHubClient(offline, max_total_wait=3.5, sleep=sleeps.append, timeout=2.0)
    with pytest.raises(Unreachable, match="no answer"):
        client.post_status(SHA, "success", "mlx-parity/core")
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected"),
    [
        (403, {"retry-after": "0"}, "", MINIMUM_WAIT),
        (429, {"retry-after": "Thu, 28 May 2026 12:00:12 GMT"}, "", 12.0),
        (403, {}, "You have exceeded a secondary rate limit", SECONDARY_LIMIT_WAIT),
        (429, {}, "", SECONDARY_LIMIT_WAIT),
        (403, {"x-ratelimit-remaining": "12"}, "Resource not accessible by integration", None),
        (404, {"retry-after": "5"}, "Not Found", None),
    ],
)
def test_rate_limit_rules(
    status: int, headers: dict[str, str], message: str, expected: float | None
) -> None:
    now = 1_779_969_600.0  # Thu, 28 May 2026 12:00:00 GMT
    assert rate_limit_wait(status, CaseInsensitiveDict(headers), message, now) == expected


def test_an_answer_that_is_not_githubs_shape_is_a_typed_error(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    # A captive portal or a misconfigured proxy answers 200 with HTML.
    httpserver.expect_request(f"{REPO_PATH}/actions/runs/{RUN_ID}/artifacts").respond_with_data(
        "<html>Sign in to the network</html>", content_type="text/html"
    )
    with pytest.raises(GitHubError, match="unexpected answer"):
        client.list_run_artifacts()


# -- errors as types, and the read-only token ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "error_type"),
    [
        (401, "Bad credentials", Unauthorized),
        (403, "Resource not accessible by integration", PermissionDenied),
        (404, "Not Found", NotFound),
        (410, "Artifact has expired", ArtifactExpired),
        (422, "Validation Failed", ValidationFailed),
        (501, "Not Implemented", ServerError),
    ],
)
def test_http_errors_map_to_types_and_never_show_the_token(
    httpserver: HTTPServer,
    client: GitHubClient,
    sleeps: list[float],
    status: int,
    message: str,
    error_type: type[GitHubError],
) -> None:
    # A server that echoes the token back must still not get it into the exception.
    httpserver.expect_request(f"{REPO_PATH}/statuses/{SHA}").respond_with_json(
        github_error(f"{message} (token {TOKEN})"),
        status=status,
        headers={"x-ratelimit-remaining": "4999", "x-ratelimit-reset": str(int(NOW) + 60)},
    )
    with pytest.raises(error_type) as raised:
        client.post_status(SHA, "success", "mlx-parity/core")
    error = raised.value
    assert type(error) is error_type and error.status == status
    assert message in str(error)
    for text in (str(error), repr(error), repr(error.args), repr(client)):
        assert TOKEN not in text
    assert sleeps == []


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            [
                {
                    "resource": "Status",
                    "code": "custom",
                    "message": "This SHA and context has reached the maximum number of statuses.",
                }
            ],
            "422 Validation Failed: This SHA and context has reached the maximum number of "
            "statuses.",
        ),
        (
            [{"resource": "Status", "field": "state", "code": "invalid"}],
            "422 Validation Failed: state: invalid",
        ),
    ],
)
def test_a_422_names_githubs_reason_from_its_errors(
    httpserver: HTTPServer, client: GitHubClient, errors: list[dict], expected: str
) -> None:
    body = conforming(gh.ValidationError, {**github_error("Validation Failed"), "errors": errors})
    httpserver.expect_request(f"{REPO_PATH}/statuses/{SHA}").respond_with_json(body, status=422)
    with pytest.raises(ValidationFailed) as raised:
        client.post_status(SHA, "success", "mlx-parity/core")
    assert str(raised.value).endswith(expected)


def test_a_read_only_token_is_explained_instead_of_failing_the_round(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    httpserver.expect_request(f"{REPO_PATH}/statuses/{SHA}", method="POST").respond_with_json(
        github_error(
            "Resource not accessible by integration",
            "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
        ),
        status=403,
        headers={"x-ratelimit-remaining": "999", "x-accepted-github-permissions": "statuses=write"},
    )
    statuses = [
        CommitStatus(state="success", context="mlx-parity/reference", description="15/15"),
        CommitStatus(state="failure", context="mlx-parity/core", description="8/15"),
    ]
    explanation = post_statuses_or_explain(client, SHA, statuses)
    assert explanation == READ_ONLY_EXPLANATION
    # It is written into the job summary, so it must not point there.
    assert explanation == "read-only token (fork pull request?): statuses not posted"
    # The first refusal ends it: no point asking again with the same token.
    assert len(httpserver.log) == 1


def test_a_refused_status_outside_a_pull_request_is_an_error_naming_the_permission(
    httpserver: HTTPServer, context: GitHubContext
) -> None:
    # A push or a dispatch runs with the workflow's own token: a 403 is the workflow's to fix.
    client = GitHubClient(context.model_copy(update={"event_name": "push"}))
    httpserver.expect_request(f"{REPO_PATH}/statuses/{SHA}", method="POST").respond_with_json(
        github_error("Resource not accessible by integration"), status=403
    )
    statuses = [CommitStatus(state="success", context="mlx-parity/core")]
    with pytest.raises(PermissionDenied, match="permissions: statuses: write") as raised:
        post_statuses_or_explain(client, SHA, statuses)
    assert raised.value.exit_code == 3 and raised.value.status == 403


def test_post_statuses_or_explain_posts_every_status(
    httpserver: HTTPServer, client: GitHubClient
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_request(path, method="POST").respond_with_handler(_status_handler)
    statuses = [
        CommitStatus(state="success", context=f"mlx-parity/probe-{i}", target_url=None)
        for i in range(3)
    ]
    assert post_statuses_or_explain(client, SHA, statuses) is None
    contexts = [sent_json(request)["context"] for request in requests_to(httpserver, path)]
    assert contexts == ["mlx-parity/probe-0", "mlx-parity/probe-1", "mlx-parity/probe-2"]


def test_without_a_token_statuses_are_explained_not_sent(
    httpserver: HTTPServer, context: GitHubContext
) -> None:
    client = GitHubClient(context.model_copy(update={"token": None}))
    statuses = [CommitStatus(state="success", context="mlx-parity/core")]
    explanation = post_statuses_or_explain(client, SHA, statuses)
    assert explanation is not None and "GITHUB_TOKEN" in explanation
    assert not httpserver.log


def test_a_500_on_a_status_is_retried_since_posting_it_again_is_harmless(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/statuses/{SHA}"
    httpserver.expect_ordered_request(path, method="POST").respond_with_json(
        github_error("Server Error"), status=500
    )
    httpserver.expect_ordered_request(path, method="POST").respond_with_handler(_status_handler)
    posted = client.post_status(SHA, "success", "mlx-parity/smoke/core")
    assert posted.context == "mlx-parity/smoke/core"
    assert sleeps == [1.0] and len(requests_to(httpserver, path)) == 2


def test_a_500_on_a_check_run_is_not_retried_since_it_may_exist_already(
    httpserver: HTTPServer, client: GitHubClient, sleeps: list[float]
) -> None:
    path = f"{REPO_PATH}/check-runs"
    httpserver.expect_request(path, method="POST").respond_with_json(
        github_error("Server Error"), status=500
    )
    with pytest.raises(ServerError):
        client.create_check_run("mlx-parity round smoke", SHA, "success", "ok", "summary")
    assert sleeps == [] and len(requests_to(httpserver, path)) == 1


@pytest.mark.parametrize("body", [b"", b"{}", b'{"id": 7}', b"not json"])
def test_an_accepted_write_with_a_thin_body_is_success(
    httpserver: HTTPServer, client: GitHubClient, body: bytes
) -> None:
    httpserver.expect_request(f"{REPO_PATH}/statuses/{SHA}", method="POST").respond_with_data(
        body, status=201, content_type="application/json"
    )
    httpserver.expect_request(f"{REPO_PATH}/check-runs", method="POST").respond_with_data(
        body, status=201, content_type="application/json"
    )
    client.post_status(SHA, "success", "mlx-parity/smoke/core")
    run = client.create_check_run("mlx-parity round smoke", SHA, "success", "ok", "summary")
    assert run.html_url is None
