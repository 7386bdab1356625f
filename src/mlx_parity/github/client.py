"""A small GitHub REST client for the five calls mlx-parity makes: a commit status, a check run,
a run's artifacts (list and download) and a workflow dispatch, each through ``_send``, which owns
retrying and turning failures into typed errors."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
from pydantic import BaseModel, ValidationError

from .archive import safe_extract
from .env import ENVIRONMENT_VARIABLES, GitHubContext
from .errors import (
    ArtifactExpired,
    GitHubError,
    InvalidRequest,
    MissingContext,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthorized,
    Unreachable,
    ValidationFailed,
)
from .limits import DISPATCH_INPUTS_LIMIT, fit_check_summary, fit_status_description
from .models import (
    Artifact,
    ArtifactPage,
    CheckConclusion,
    CheckRun,
    CommitState,
    CommitStatus,
    DispatchedRun,
    PostedStatus,
)
from .retry import (
    DEFAULT_WAIT_BUDGET,
    TRANSIENT_SERVER_STATUSES,
    rate_limit_wait,
    server_error_backoff,
)

logger = logging.getLogger(__name__)

# The oldest version still served: github.com and GitHub Enterprise Server both accept it, and the
# endpoints used here are identical in the newer one.
API_VERSION = "2022-11-28"
USER_AGENT = "mlx-parity"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DOWNLOAD_CHUNK_BYTES = 1 << 20
# A loop in the Link headers must not page forever.
MAX_PAGES = 100

_Model = TypeVar("_Model", bound=BaseModel)

_ERROR_TYPES: dict[int, type[GitHubError]] = {
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    410: ArtifactExpired,
    422: ValidationFailed,
}


@dataclass(frozen=True)
class _Failure:
    """One failed attempt: what to raise, and how long to wait first if it may be retried."""

    error_type: type[GitHubError]
    message: str
    status: int | None
    wait: float | None

    def error(self, note: str = "") -> GitHubError:
        message = f"{self.message}; {note}" if note else self.message
        if self.error_type is RateLimited:
            return RateLimited(message, status=self.status, retry_after=self.wait)
        return self.error_type(message, status=self.status)


class GitHubClient:
    """Talks to the repository named by ``context`` with its token.

    ``max_total_wait`` bounds the seconds one call spends sleeping between retries and waiting
    for answers (a server that accepts and never answers uses the budget up, too); ``sleep`` and
    ``clock`` are injectable so tests neither sleep nor depend on the time of day.
    """

    def __init__(
        self,
        context: GitHubContext,
        *,
        max_total_wait: float = DEFAULT_WAIT_BUDGET,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        self.context = context
        self.max_total_wait = max_total_wait
        self._session = requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._timeout = timeout

    def __repr__(self) -> str:
        context = self.context
        return f"GitHubClient(api_url={context.api_url!r}, repository={context.repository!r})"

    # -- the calls ---------------------------------------------------------------------------

    def post_status(
        self,
        sha: str,
        state: CommitState,
        context: str,
        description: str = "",
        target_url: str | None = None,
    ) -> PostedStatus:
        """Set commit status ``context`` on ``sha``; the description is cut to GitHub's 140."""
        try:
            status = CommitStatus(
                state=state,
                context=context,
                description=fit_status_description(description),
                target_url=target_url,
            )
        except ValidationError as exc:
            raise InvalidRequest(f"invalid CommitStatus: {_problems(exc)}") from None
        # Posting the same status twice leaves one status: safe to retry after a 5xx.
        url = self._repo_url(f"/statuses/{_segment(sha)}")
        response = self._send("POST", url, json=status.model_dump(mode="json", exclude_none=True))
        return self._parse(PostedStatus, response, accepted=True)

    def create_check_run(
        self,
        name: str,
        head_sha: str,
        conclusion: CheckConclusion,
        title: str,
        summary: str,
        details_url: str | None = None,
    ) -> CheckRun:
        """Create a completed check run; a summary over 65,535 characters is cut with a note."""
        body: dict[str, Any] = {
            "name": name,
            "head_sha": head_sha,
            "status": "completed",
            "conclusion": conclusion,
            "output": {"title": title, "summary": fit_check_summary(summary)},
        }
        if details_url is not None:
            body["details_url"] = details_url
        # A 5xx may hide a check run that was created; repeating it would create a second one.
        response = self._send("POST", self._repo_url("/check-runs"), json=body, idempotent=False)
        return self._parse(CheckRun, response, accepted=True)

    def list_run_artifacts(self, run_id: int | None = None) -> list[Artifact]:
        """Every artifact of workflow run ``run_id`` (default: this run), across all pages."""
        run_id = self.context.run_id if run_id is None else run_id
        if run_id is None:
            raise MissingContext(ENVIRONMENT_VARIABLES["run_id"])
        url: str | None = self._repo_url(f"/actions/runs/{int(run_id)}/artifacts")
        params: dict[str, Any] | None = {"per_page": 100}
        artifacts: list[Artifact] = []
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise GitHubError(f"GET {_display(url)}: pagination does not end")
            seen.add(url)
            response = self._send("GET", url, params=params)
            artifacts.extend(self._parse(ArtifactPage, response).artifacts)
            next_url = response.links.get("next", {}).get("url")
            # The next link carries its own query (page, per_page); re-sending params would clash.
            url = self._require_api_url(next_url) if next_url else None
            params = None
        return artifacts

    def download_artifact(self, artifact: Artifact, dest_dir: Path | str) -> list[Path]:
        """Download ``artifact``'s zip and unpack it into ``dest_dir``; returns the files written.

        GitHub answers the archive URL with a redirect to short-lived storage whose URL is itself
        the credential, so the token is not sent there (GitHub's own clients behave the same way).
        """
        if artifact.expired:
            raise ArtifactExpired(f"artifact {artifact.name!r} ({artifact.id}) has expired")
        archive_url = self._require_api_url(artifact.archive_download_url)
        first = self._send("GET", archive_url, allow_redirects=False, stream=True)
        if first.status_code in REDIRECT_STATUSES:
            first.close()
            location = first.headers.get("location")
            if not location:
                raise GitHubError(f"GET {_display(archive_url)}: redirect without a location")
            # No token there; None also drops an Authorization in the session's default headers.
            storage_headers = {"User-Agent": USER_AGENT, "Authorization": None}
            archive = self._send(
                "GET", urljoin(archive_url, location), headers=storage_headers, stream=True
            )
        else:
            archive = first  # some servers hand out the zip directly
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mlx-parity-artifact-") as scratch:
            zip_path = Path(scratch) / f"{artifact.id}.zip"
            self._save(archive, zip_path)
            return safe_extract(zip_path, dest)

    def dispatch_workflow(
        self, workflow_file: str, ref: str, inputs: Mapping[str, str] | None = None
    ) -> DispatchedRun | None:
        """Start ``workflow_file`` (e.g. ``parity.yml``) on ``ref`` with ``inputs``; returns the
        run when the server volunteers its details, otherwise None (204)."""
        inputs = dict(inputs or {})
        if len(inputs) > DISPATCH_INPUTS_LIMIT:
            raise InvalidRequest(
                f"workflow_dispatch takes at most {DISPATCH_INPUTS_LIMIT} inputs; got {len(inputs)}"
            )
        if not all(isinstance(key, str) and isinstance(v, str) for key, v in inputs.items()):
            raise InvalidRequest("workflow_dispatch inputs must map strings to strings")
        if not workflow_file or "/" in workflow_file:
            raise InvalidRequest(f"workflow_file must be a file name: {workflow_file!r}")
        body: dict[str, Any] = {"ref": ref}
        if inputs:
            body["inputs"] = inputs
        url = self._repo_url(f"/actions/workflows/{_segment(workflow_file)}/dispatches")
        # A 5xx may hide a dispatch that happened; repeating it would start a second round.
        response = self._send("POST", url, json=body, idempotent=False)
        if response.status_code == 204 or not response.content:
            return None
        return self._parse(DispatchedRun, response)

    # -- plumbing ----------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | None] | None = None,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        allow_redirects: bool = True,
        stream: bool = False,
        idempotent: bool = True,
    ) -> requests.Response:
        """One call with retries; returns any answer below 400 and raises a typed error otherwise.
        ``headers`` default to the API's, token included.

        Rate limits are always retried (GitHub did not act on the request); 5xx and lost
        connections only when ``idempotent``, since the first attempt may have taken effect.
        """
        headers = self._api_headers() if headers is None else dict(headers)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            asked = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    params=params,
                    allow_redirects=allow_redirects,
                    stream=stream,
                    # Never wait on an answer past the budget (at least a second, to get one).
                    timeout=min(self._timeout, max(self.max_total_wait - waited, 1.0)),
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure = _Failure(
                    Unreachable,
                    f"{method} {_display(url)}: no answer ({type(exc).__name__})",
                    None,
                    server_error_backoff(attempt) if idempotent else None,
                )
            else:
                if response.status_code < 400:
                    return response
                failure = self._failure(method, url, response, attempt, idempotent)
                response.close()
            waited += time.monotonic() - asked
            if failure.wait is None:
                raise failure.error()
            if waited + failure.wait > self.max_total_wait:
                raise failure.error(
                    f"gave up: waiting {failure.wait:g} s more would exceed the "
                    f"{self.max_total_wait:g} s budget ({waited:.3g} s already spent)"
                )
            logger.warning("%s; retrying in %g s", failure.message, failure.wait)
            self._sleep(failure.wait)
            waited += failure.wait

    def _failure(
        self, method: str, url: str, response: requests.Response, attempt: int, idempotent: bool
    ) -> _Failure:
        status = response.status_code
        github_message = self._redact(_github_message(response))
        message = f"{method} {_display(url)}: {status} {github_message}".rstrip()
        rate_limit = rate_limit_wait(status, response.headers, github_message, self._clock())
        if rate_limit is not None:
            return _Failure(RateLimited, message, status, rate_limit)
        if status >= 500:
            transient = status in TRANSIENT_SERVER_STATUSES and idempotent
            wait = server_error_backoff(attempt) if transient else None
            return _Failure(ServerError, message, status, wait)
        return _Failure(_ERROR_TYPES.get(status, GitHubError), message, status, None)

    def _parse(
        self, model: type[_Model], response: requests.Response, accepted: bool = False
    ) -> _Model:
        """The answer as ``model``. With ``accepted`` (a write GitHub took), a body that does
        not parse is only a warning: the write happened whatever the body says."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            where = f"{response.request.method} {_display(response.url)}"
            if accepted:
                logger.warning(
                    "%s: accepted (%s) with an unreadable body", where, response.status_code
                )
                return model()
            raise GitHubError(
                self._redact(f"{where}: unexpected answer ({_problems(exc, limit=3)})"),
                status=response.status_code,
            ) from None

    def _save(self, response: requests.Response, path: Path) -> None:
        try:
            with path.open("wb") as sink:
                for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                    sink.write(chunk)
        except requests.RequestException as exc:
            raise Unreachable(
                f"GET {_display(response.url)}: download interrupted ({type(exc).__name__})"
            ) from None
        finally:
            response.close()

    def _api_headers(self) -> dict[str, str | None]:
        return {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {self.context.token_value()}",
        }

    def _require_api_url(self, url: str) -> str:
        """Refuse to send the token anywhere but the configured API."""
        if not url.startswith(f"{self.context.api_url}/"):
            raise GitHubError(
                f"refusing to send the token to {_display(url)}: not under {self.context.api_url}"
            )
        return url

    def _repo_url(self, path: str) -> str:
        owner, repo = _segment(self.context.owner), _segment(self.context.repo)
        return f"{self.context.api_url}/repos/{owner}/{repo}{path}"

    def _redact(self, text: str) -> str:
        token = self.context.token.get_secret_value() if self.context.token else ""
        return text.replace(token, "***") if token else text


def _problems(exc: ValidationError, limit: int | None = None) -> str:
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or '<body>'}: {error['msg']}"
        for error in exc.errors(include_input=False)[:limit]
    )


def _github_message(response: requests.Response) -> str:
    # GitHub's errors are JSON with a "message"; proxies in front of it answer HTML or text.
    try:
        payload = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:200]
    if not (isinstance(payload, dict) and isinstance(payload.get("message"), str)):
        return response.reason or ""
    # A 422's "message" is only "Validation Failed"; the reason is in its "errors".
    errors = payload.get("errors")
    items = errors if isinstance(errors, list) else []
    details = "; ".join(filter(None, map(_error_detail, items)))
    return f"{payload['message']}: {details}" if details else payload["message"]


def _error_detail(item: object) -> str:
    """One entry of GitHub's ``errors``: its message, else ``field: code`` (some are strings)."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    if isinstance(item.get("message"), str):
        return item["message"]
    return ": ".join(str(item[key]) for key in ("field", "code") if item.get(key))


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _display(url: str) -> str:
    # Storage URLs carry a signature in the query string: it is a credential, never shown.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
