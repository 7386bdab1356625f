"""Small helpers shared by the tests (test modules import this, never each other)."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from githubkit_schemas.v2022_11_28 import models as gh
from pydantic import BaseModel
from pytest_httpserver import HTTPServer
from werkzeug import Request

from mlx_parity.artifact import Environment, Row, SeedResult, save
from mlx_parity.collect.compare import RoundReport
from mlx_parity.commands.collect import collect_round
from mlx_parity.github.client import API_VERSION
from mlx_parity.knobs import Knobs
from mlx_parity.matrix import Catalog, Gates, ResolvedProbe, ResolvedRound, Round, resolve
from mlx_parity.probes import BUILTIN_PROBES, Probe
from mlx_parity.steps import StepRecord
from mlx_parity.trainers import lookup

if TYPE_CHECKING:
    from mlx_parity.cell import ModelSource

# The detection suite's candidate trainers (``plugin:candidates:<function>``) and their table.
PLUGINS = Path(__file__).resolve().parents[1] / "examples" / "candidates"


def use_plugins() -> None:
    """Make ``examples/candidates`` importable, so ``plugin:candidates:...`` loads."""
    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))


def probe_of(probe_id: str, trainer: str, knobs: Knobs) -> ResolvedProbe:
    """An ad-hoc probe, resolved as a round would resolve it."""
    return ResolvedProbe(Probe(id=probe_id, trainer=trainer), lookup(trainer), knobs, "any")


def run_trainer(
    source: ModelSource, trainer: str, knobs: Knobs, seed: int, texts: list[str]
) -> list[StepRecord]:
    """A trainer on fresh weights (cast to ``knobs.dtype``); its trace."""
    from mlx_parity.cell import prepare_model  # MLX: only the tests that train pay for it

    model = prepare_model(source, knobs.dtype)
    return lookup(trainer).load()(model, source.tokenizer(), texts, knobs, seed, None)


def losses(records: list[StepRecord]) -> list[float]:
    return [r.loss for r in records]


def text_of_length(tokenizer, n_tokens: int) -> str:
    """A row whose training encoding (BOS + text + EOS) has exactly ``n_tokens`` tokens."""
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    text = ""
    i = 0
    while len(tokenizer.encode(text)) + 1 < n_tokens:
        text += ("" if not text else " ") + words[i % len(words)]
        i += 1
    # Trim characters until the count is exact (single characters are single tokens).
    while len(tokenizer.encode(text)) + 1 > n_tokens:
        text = text[:-1]
    while len(tokenizer.encode(text)) + 1 < n_tokens:
        text += "!"
    assert len(tokenizer.encode(text)) + 1 == n_tokens, text
    return text


# --- from test_collect.py -----------------------------------------------------------------

ROUND = "T1"


SEEDS_15 = [1, 7, 42, 123, 456, 789, 999, 1234, 3407, 5678, 9012, 12345, 22222, 31415, 65535]


ENVIRONMENT = Environment(
    mlx="0.30.0",
    mlx_lm="0.30.0",
    python="3.11.9",
    platform="macOS-15.5-arm64",
    device="gpu",
    runner="macos-15",
)


ANSWER = "<<HELLO!!>> My name is Unsloth!"


def float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def trace(seed: int, steps: int = 30) -> list[float]:
    """A memorisation curve like the smoke fixture's: ~5.2 falling to ~0.002."""
    return [
        float32(5.2 * math.exp(-0.3 * t) + 0.002 * (1 + math.sin(seed + t))) for t in range(steps)
    ]


def make_result(
    probe: str,
    seed: int,
    *,
    losses: list[float] | None = None,
    shape: tuple[int, int] = (6, 33),
    shapes: dict[int, tuple[int, int]] | None = None,
    ntoks: int = 96,
    cf_loss: float | None = 0.0004,
    passed: bool = True,
    generation: str | None = ANSWER,
    status: str = "ok",
    round_id: str = ROUND,
    error: str | None = None,
    grad_norm: float = 1.5,
    batches: dict[int, str] | None = None,
    updates: dict[int, int] | None = None,
) -> SeedResult:
    losses = trace(seed) if losses is None else losses
    shapes = shapes or {}
    rows = [
        Row(
            step=i + 1,
            loss=loss,
            grad_norm=grad_norm,
            ntoks=ntoks,
            input_shape=shapes.get(i + 1, shape),
            lr=1e-3,
            batch=(batches or {}).get(i + 1, f"batch-{i % 4}"),
            updates=(updates or {}).get(i + 1, i + 1),
        )
        for i, loss in enumerate(losses)
    ]
    # What the probe resolves to in these rounds (no settings): what a real run records.
    recorded = CATALOG.probes[probe] if probe in CATALOG.probes else Probe(id=probe)
    return SeedResult(
        round_id=round_id,
        probe_id=probe,
        seed=seed,
        trainer=recorded.trainer,
        fixture={"name": "smoke"},
        config=recorded.resolved(Knobs()).model_dump(mode="json"),
        environment=ENVIRONMENT,
        rows=rows,
        post_train_loss=0.001,
        cf_loss=cf_loss,
        generation=generation,
        passed=passed,
        status=status,
        error=error,
    )


CATALOG = Catalog(
    probes={
        **BUILTIN_PROBES,
        "twin": Probe(id="twin", expect="identical"),
        "near": Probe(id="near", knobs={"compile": False}, expect="close"),
        "pad": Probe(id="pad", knobs={"padding": "multiple"}, expect="any"),
        "mask": Probe(id="mask", knobs={"loss_mask": "exclusive"}, expect="diverges"),
        "clip": Probe(id="clip", knobs={"clip_semantics": "legacy"}, expect="any"),
        "reordered": Probe(id="reordered", knobs={"compile": False}, expect="equivalent"),
        # A trainer under test with no declared expectation: held to parity by default.
        "candidate": Probe(id="candidate", trainer="plugin:somebody.trainer:train"),
    }
)


def make_round(probes=("reference", "core"), seeds=(1, 7, 42), **gates) -> ResolvedRound:
    round_ = Round(
        id=ROUND,
        hypothesis="test <round> hypothesis",
        probes=list(probes),
        seeds=list(seeds),
        gates=Gates(**gates),
    )
    return resolve(round_, CATALOG)


def write(directory: Path, *results: SeedResult) -> None:
    for result in results:
        save(result, directory)


def full_round(
    directory: Path,
    round_: ResolvedRound,
    overrides: dict[tuple[str, int], SeedResult | None] | None = None,
) -> None:
    """Every planned (probe, seed), identical to the baseline unless ``overrides`` says so:
    ``overrides[(probe, seed)]`` is a SeedResult or None (= leave the cell out)."""
    for probe in round_.probes:
        for seed in round_.seeds:
            key = (probe, seed)
            result = (overrides or {}).get(key, make_result(probe, seed))
            if result is not None:
                save(result, directory)


def collect(directory: Path, round_: ResolvedRound) -> RoundReport:
    return collect_round(directory, round_)


# --- from test_github_client.py -----------------------------------------------------------

TOKEN = "ghs_l00kM4NoLeaks0123456789abcdefABCDEF"


OWNER, REPO = "octo-org", "parity"


REPO_PATH = f"/repos/{OWNER}/{REPO}"


SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


RUN_ID = 4242


NOW = 1_780_000_000.0


def conforming(model: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` if it validates against GitHub's ``model`` with no undeclared keys."""
    instance = model.model_validate(payload)
    # Models that ignore extras drop undeclared keys, so the round trip would lose them.
    assert instance.model_dump(mode="json", by_alias=True, exclude_unset=True) == payload
    _assert_no_extras(instance)
    return payload


def sent_json(request: Request) -> dict[str, Any]:
    assert request.headers["Content-Type"] == "application/json"
    return json.loads(request.get_data())


def status_response(body: dict[str, Any], status_id: int = 1) -> dict[str, Any]:
    return conforming(
        gh.Status,
        {
            "url": f"https://api.github.com{REPO_PATH}/statuses/{SHA}",
            "avatar_url": None,
            "id": status_id,
            "node_id": "SC_kwDOAAABc8",
            "state": body["state"],
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "context": body.get("context", "default"),
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "creator": user(),
        },
    )


def check_run_response(body: dict[str, Any]) -> dict[str, Any]:
    return conforming(
        gh.CheckRun,
        {
            "id": 77,
            "head_sha": body["head_sha"],
            "node_id": "CR_kwDOAAABc8",
            "external_id": None,
            "url": f"https://api.github.com{REPO_PATH}/check-runs/77",
            "html_url": f"https://github.com/{OWNER}/{REPO}/runs/77",
            "details_url": None,
            "status": "completed",
            "conclusion": body["conclusion"],
            "started_at": TIMESTAMP,
            "completed_at": TIMESTAMP,
            "output": {
                "title": body["output"]["title"],
                "summary": body["output"]["summary"],
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"https://api.github.com{REPO_PATH}/check-runs/77/annotations",
            },
            "name": body["name"],
            "check_suite": {"id": 5},
            "app": None,
            "pull_requests": [],
        },
    )


def artifact(server: HTTPServer, artifact_id: int, name: str, *, expired: bool = False) -> dict:
    return {
        "id": artifact_id,
        "node_id": f"MDg6QXJ0aWZhY3Qx{artifact_id}",
        "name": name,
        "size_in_bytes": 1024 + artifact_id,
        "url": server.url_for(f"{REPO_PATH}/actions/artifacts/{artifact_id}"),
        "archive_download_url": server.url_for(f"{REPO_PATH}/actions/artifacts/{artifact_id}/zip"),
        "expired": expired,
        "created_at": TIMESTAMP,
        "expires_at": "2026-08-26T12:00:00Z",
        "updated_at": TIMESTAMP,
        "digest": "sha256:" + "ab" * 32,
        "workflow_run": {"id": RUN_ID, "head_sha": SHA, "head_branch": "main"},
    }


def artifact_page(artifacts: list[dict], total: int) -> dict[str, Any]:
    return conforming(
        gh.ReposOwnerRepoActionsRunsRunIdArtifactsGetResponse200,
        {"total_count": total, "artifacts": artifacts},
    )


def github_error(message: str, doc: str = "https://docs.github.com/rest") -> dict[str, Any]:
    return conforming(gh.BasicError, {"message": message, "documentation_url": doc})


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def requests_to(server: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in server.log if request.path == path]


def assert_api_headers(request: Request) -> None:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-GitHub-Api-Version"] == API_VERSION
    assert request.headers["Accept"] == "application/vnd.github+json"


# --- from test_workflow.py ----------------------------------------------------------------

# The linters are PyPI packages installed into the same environment as the test runner.
TOOLS_DIR = Path(sys.executable).parent


def tool(name: str) -> str:
    path = TOOLS_DIR / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return str(path)


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    # The workflow's own directory as cwd: no project config of this repository applies.
    cwd = Path(args[-1]).parent
    env = {"PATH": f"{TOOLS_DIR}:/usr/bin:/bin", "HOME": str(Path.home()), "NO_COLOR": "1"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    # -shellcheck names the venv's shellcheck, so run: scripts are always shell-checked.
    return run_tool(tool("actionlint"), "-shellcheck", tool("shellcheck"), str(workflow))


def zizmor(workflow: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_tool(tool("zizmor"), "--offline", *flags, str(workflow))


def schema_check(workflow: Path) -> subprocess.CompletedProcess[str]:
    schema = "vendor.github-workflows"
    return run_tool(tool("check-jsonschema"), "--builtin-schema", schema, str(workflow))


# --- from test_github_client.py -----------------------------------------------------------

TIMESTAMP = "2026-05-28T12:00:00Z"


def user() -> dict[str, Any]:
    base = "https://api.github.com/users/github-actions%5Bbot%5D"
    return {
        "login": "github-actions[bot]",
        "id": 41898282,
        "node_id": "MDM6Qm90NDE4OTgyODI=",
        "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": "https://github.com/apps/github-actions",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": "Bot",
        "site_admin": False,
    }


# --- from test_github_client.py -----------------------------------------------------------


def _assert_no_extras(value: Any) -> None:
    # Models that allow extras keep them aside; only a model that declares no field at all (a
    # workflow's inputs) is meant to carry free-form keys.
    if isinstance(value, BaseModel):
        if type(value).model_fields:
            assert not value.model_extra, f"undeclared keys in {type(value).__name__}"
        for name in type(value).model_fields:
            _assert_no_extras(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            _assert_no_extras(item)
