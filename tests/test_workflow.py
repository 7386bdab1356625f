"""The generated GitHub Actions workflow: deterministic, in sync with the checked-in file, clean
under the real linters (actionlint + shellcheck, zizmor, the workflow JSON schema), and shaped
by GitHub's security rules (see the module docstring of mlx_parity/workflow/generate.py)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from helpers import actionlint, schema_check, zizmor
from mlx_parity import cli
from mlx_parity.workflow.generate import render_workflow
from mlx_parity.workflow.settings import (
    MINIMUM_PYTHON,
    OVERRIDES_FILE,
    WorkflowSettingsError,
    load_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = REPO_ROOT / ".github" / "workflows" / "mlx-parity.yml"
PINNED_USES = re.compile(
    r"^\s*(- )?uses: [A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[a-z]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+$"
)


def load_yaml(path: Path) -> dict[str, Any]:
    # YAML 1.2 (ruamel), as GitHub reads it: `on` is a key, not the boolean true.
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A freshly generated workflow in a scratch repository layout."""
    monkeypatch.chdir(REPO_ROOT)
    target = tmp_path / ".github" / "workflows" / "mlx-parity.yml"
    assert cli.main(["workflow", "generate", "--file", str(target)]) == 0
    return target


@pytest.fixture(params=["generated", "checked-in"])
def workflow_file(request: pytest.FixtureRequest) -> Path:
    if request.param == "checked-in":
        return CHECKED_IN
    return request.getfixturevalue("generated")


def write_overrides(root: Path, text: str) -> None:
    path = root / "matrix" / OVERRIDES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- the real linters --------------------------------------------------------------------


def test_actionlint_with_shellcheck_passes(workflow_file: Path) -> None:
    result = actionlint(workflow_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_reports_no_findings(workflow_file: Path) -> None:
    result = zizmor(workflow_file)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "No findings to report" in output, output


def test_zizmor_offline_auditor_persona_reports_no_findings(workflow_file: Path) -> None:
    # auditor is the strictest persona (includes pedantic): no finding at any severity.
    result = zizmor(workflow_file, "--persona", "auditor")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "No findings to report" in output, output


def test_github_workflow_schema_accepts(workflow_file: Path) -> None:
    result = schema_check(workflow_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_linters_do_catch_a_bad_workflow(generated: Path) -> None:
    """The green runs above mean something only if the same calls fail on a broken file."""
    text = generated.read_text(encoding="utf-8")
    injected = text.replace(
        "mlx-parity status --report report.json",
        "echo ${{ github.event.pull_request.title }} $UNQUOTED",
    )
    assert injected != text
    generated.write_text(injected, encoding="utf-8")
    lint = actionlint(generated)
    assert lint.returncode != 0 and "SC2086" in lint.stdout, lint.stdout
    audit = zizmor(generated)
    assert audit.returncode != 0 and "template-injection" in audit.stdout + audit.stderr

    no_runner = re.sub(r"^    runs-on: .*\n", "", text, count=1, flags=re.MULTILINE)
    generated.write_text(no_runner, encoding="utf-8")
    schema = schema_check(generated)
    assert schema.returncode != 0, schema.stdout


# --- generate and check ------------------------------------------------------------------


def test_generate_is_deterministic(generated: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.yml"
    assert cli.main(["workflow", "generate", "--file", str(again)]) == 0
    assert again.read_bytes() == generated.read_bytes()
    settings = load_settings(REPO_ROOT / "matrix")
    assert render_workflow(settings) == render_workflow(settings)


def test_check_passes_on_the_checked_in_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert cli.main(["workflow", "check"]) == 0, capsys.readouterr().out


def test_check_fails_with_a_diff_after_a_manual_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    copy = tmp_path / "mlx-parity.yml"
    shutil.copyfile(CHECKED_IN, copy)
    text = copy.read_text(encoding="utf-8")
    copy.write_text(text.replace("max-parallel: 5", "max-parallel: 20"), encoding="utf-8")
    assert cli.main(["workflow", "check", "--file", str(copy)]) == 4  # drifted
    out = capsys.readouterr().out
    assert "--- " in out and "+++ " in out
    assert "-      max-parallel: 20" in out
    assert "+      max-parallel: 5" in out


def test_check_of_a_missing_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["workflow", "check"]) == 2
    assert "mlx-parity workflow generate" in capsys.readouterr().err


def test_generate_defaults_to_the_settings_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["workflow", "generate"]) == 0
    written = tmp_path / ".github" / "workflows" / "mlx-parity.yml"
    assert written.read_text(encoding="utf-8") == render_workflow(
        load_settings(tmp_path / "matrix")
    )
    assert cli.main(["workflow", "check"]) == 0


def test_generate_and_check_find_the_workflow_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The repository root is where matrix/ is, as in a repository init set up.
    (tmp_path / "matrix" / "rounds").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "matrix" / "rounds" / "smoke.toml", tmp_path / "matrix" / "rounds")
    package = tmp_path / "my_trainer" / "sub"
    package.mkdir(parents=True)
    monkeypatch.chdir(package)
    assert cli.main(["workflow", "generate"]) == 0
    assert (tmp_path / ".github" / "workflows" / "mlx-parity.yml").is_file()
    assert not (package / ".github").exists()
    assert cli.main(["workflow", "check"]) == 0, capsys.readouterr().err
    monkeypatch.chdir(tmp_path / "matrix")
    assert cli.main(["workflow", "check", "--matrix", "."]) == 0, capsys.readouterr().err
    assert not (tmp_path / "matrix" / ".github").exists()


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "runner",
    ['"macos-14"', '"macos-14-xlarge"', '["macos-14", "arm64"]'],
)
def test_retired_macos_14_is_refused(tmp_path: Path, runner: str) -> None:
    write_overrides(tmp_path, f"[workflow]\nprobe_runner = {runner}\n")
    with pytest.raises(WorkflowSettingsError) as info:
        load_settings(tmp_path / "matrix")
    message = str(info.value)
    assert "matrix/workflow.toml:2" in message
    assert "workflow.probe_runner" in message
    assert "retired" in message and "2026-11-02" in message


def test_intel_macos_is_refused_for_probes(tmp_path: Path) -> None:
    write_overrides(tmp_path, '[workflow]\nprobe_runner = "macos-15-intel"\n')
    with pytest.raises(WorkflowSettingsError, match="Apple silicon"):
        load_settings(tmp_path / "matrix")


def test_default_labels_never_name_macos_14(generated: Path) -> None:
    assert "macos-14" not in generated.read_text(encoding="utf-8")
    assert load_settings(REPO_ROOT / "no-such-dir").probe_runner == ("macos-15",)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ('[workflow.actions.cache]\nsha = "27d5ce7"\n', "workflow.actions.cache.sha"),
        ('[workflow.actions.cache]\ntag = "v5"\n', "workflow.actions.cache.tag"),
        ("[workflow]\nmax_paralel = 3\n", "workflow.max_paralel"),
        ("[workflow]\npython_version = 3.12\n", "workflow.python_version"),
        ('[workflow]\ndefault_round = "no spaces"\n', "workflow.default_round"),
        ('[workflow]\npath = "mlx-parity.yml"\n', "workflow.path"),
        ("[workflow.timeout_minutes]\nprobe = 0\n", "workflow.timeout_minutes.probe"),
    ],
)
def test_bad_settings_name_file_line_and_key(tmp_path: Path, override: str, key: str) -> None:
    write_overrides(tmp_path, override)
    with pytest.raises(WorkflowSettingsError) as info:
        load_settings(tmp_path / "matrix")
    assert f"matrix/workflow.toml:2: {key}:" in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('[workflow]\npython_version = "3.10"\n', "needs Python 3.11 or newer, got '3.10'"),
        ('[workflow]\npython = "3.12"\n', "did you mean 'python_version'?"),
        ("[workflow.timeout_minutes]\nprobes = 9\n", "did you mean 'probe'?"),
        ("[workflow]\nzzz = 1\n", "not a workflow setting; check the spelling"),
    ],
)
def test_settings_refusals_say_what_to_write(tmp_path: Path, override: str, message: str) -> None:
    write_overrides(tmp_path, override)
    with pytest.raises(WorkflowSettingsError, match=re.escape(message)):
        load_settings(tmp_path / "matrix")


def test_the_oldest_python_is_pyprojects() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    oldest = ".".join(map(str, MINIMUM_PYTHON))
    assert project["project"]["requires-python"] == f">={oldest}"


def test_the_default_round_must_be_one_of_the_matrix(tmp_path: Path) -> None:
    write_overrides(tmp_path, '[workflow]\nlayout = "parity"\ndefault_round = "smok"\n')
    (tmp_path / "matrix" / "rounds").mkdir()
    (tmp_path / "matrix" / "rounds" / "smoke.toml").write_text("")
    with pytest.raises(WorkflowSettingsError) as info:
        load_settings(tmp_path / "matrix")
    assert "matrix/workflow.toml:3: workflow.default_round: no round 'smok'" in str(info.value)
    assert "(its rounds: smoke)" in str(info.value)
    write_overrides(tmp_path, '[workflow]\nlayout = "parity"\ndefault_round = "smoke"\n')
    assert load_settings(tmp_path / "matrix").default_round == "smoke"


def test_settings_outside_the_workflow_table_are_refused(tmp_path: Path) -> None:
    write_overrides(tmp_path, "[workflows]\nmax_parallel = 3\n")
    with pytest.raises(WorkflowSettingsError, match=r"workflow\.toml:1: unknown key 'workflows'"):
        load_settings(tmp_path / "matrix")


def test_overrides_reach_the_workflow(tmp_path: Path) -> None:
    write_overrides(
        tmp_path,
        "[workflow]\n"
        'probe_runner = ["self-hosted", "macOS", "ARM64"]\n'
        "max_parallel = 2\n"
        'push_branches = ["main", "release/*"]\n'
        "[workflow.timeout_minutes]\nprobe = 90\n",
    )
    settings = load_settings(tmp_path / "matrix")
    assert settings.actions.checkout.tag == "v7.0.1"  # untouched defaults survive the merge
    jobs = YAML(typ="safe").load(render_workflow(settings))["jobs"]
    assert jobs["probe"]["runs-on"] == ["self-hosted", "macOS", "ARM64"]
    assert jobs["probe"]["strategy"]["max-parallel"] == 2
    assert jobs["probe"]["timeout-minutes"] == 90
    assert jobs["plan"]["timeout-minutes"] == 15


def test_macos_26_and_latest_are_allowed(tmp_path: Path) -> None:
    for label in ("macos-26", "macos-latest", "macos-15-xlarge"):
        write_overrides(tmp_path, f'[workflow]\nprobe_runner = "{label}"\n')
        assert load_settings(tmp_path / "matrix").probe_runner == (label,)


# --- shape and security rules ------------------------------------------------------------


def steps_of(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]]


def test_every_action_is_pinned_by_sha_with_its_tag(workflow_file: Path) -> None:
    text = workflow_file.read_text()
    lines = [line for line in text.splitlines() if re.match(r"\s*(- )?uses:", line)]
    assert len(lines) == 16
    for line in lines:
        assert PINNED_USES.match(line), line
    # uv is pinned by version and installed with every wheel's sha256 checked.
    assert text.count("--require-hashes") == 3 and "uv==0.13.9 --hash=sha256:" in text


def test_permissions_are_least_privilege(workflow_file: Path) -> None:
    workflow = load_yaml(workflow_file)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"]["contents"] == "read"
        assert "write-all" not in str(job["permissions"])
        granted = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert granted == ({"statuses", "checks"} if name == "collect" else set()), name
    assert workflow_file.read_text().count("statuses: write") == 1


def test_no_expression_inside_run_scripts(workflow_file: Path) -> None:
    workflow = load_yaml(workflow_file)
    scripts = [step["run"] for _, step in steps_of(workflow) if "run" in step]
    assert scripts
    for script in scripts:
        assert "${{" not in script, script
    assert workflow["defaults"] == {"run": {"shell": "bash"}}


def test_every_checkout_drops_credentials(workflow_file: Path) -> None:
    steps = [step for _, step in steps_of(load_yaml(workflow_file))]
    checkouts = [step for step in steps if step.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 3
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_triggers_and_dispatch_inputs(workflow_file: Path) -> None:
    triggers = load_yaml(workflow_file)["on"]
    assert set(triggers) == {"push", "pull_request", "workflow_dispatch"}
    assert triggers["push"] == {"branches": ["main"]}
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert len(inputs) <= 25  # GitHub's limit
    assert inputs["round_id"] == {
        "description": inputs["round_id"]["description"],
        "required": True,
        "default": "smoke",
        "type": "string",
    }
    assert inputs["probes"]["required"] is False and inputs["seeds"]["required"] is False
    assert "pull_request_target" not in workflow_file.read_text()


def test_concurrency_cancels_only_a_pull_requests_superseded_run(workflow_file: Path) -> None:
    """A pull request's runs share one group (a newer push cancels the older run); a push or a
    dispatch is alone in its group (run_id), so it is never cancelled nor dropped as pending."""
    concurrency = load_yaml(workflow_file)["concurrency"]
    assert concurrency["group"] == (
        "${{ github.workflow }}-${{ github.event_name == 'pull_request' && "
        "format('pr-{0}', github.event.pull_request.number) || github.run_id }}"
    )
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_jobs_chain_plan_probe_collect(workflow_file: Path) -> None:
    jobs = load_yaml(workflow_file)["jobs"]
    assert list(jobs) == ["plan", "probe", "collect"]
    assert jobs["plan"]["outputs"] == {
        name: f"${{{{ steps.plan.outputs.{name} }}}}"
        for name in ("matrix", "round_id", "probes", "seeds")
    }
    probe = jobs["probe"]
    assert probe["needs"] == "plan"
    assert probe["runs-on"] == "macos-15"
    assert probe["strategy"] == {
        "fail-fast": False,
        "max-parallel": 5,
        "matrix": "${{ fromJSON(needs.plan.outputs.matrix) }}",
    }
    upload = next(s for s in probe["steps"] if s["name"] == "Upload seed results")
    assert upload["if"] == "always()"
    # One artifact per cell and attempt: a re-run's jobs never collide with the first run's.
    assert upload["with"]["name"] == (
        "seed-results-${{ matrix.cell }}-attempt${{ github.run_attempt }}"
    )
    assert upload["with"]["if-no-files-found"] == "warn"
    collect = jobs["collect"]
    assert collect["needs"] == ["plan", "probe"]
    # Not in a cancelled run (a superseded pull request push): nothing collected or posted.
    assert collect["if"] == "${{ !cancelled() && needs.plan.result == 'success' }}"
    download = next(s for s in collect["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"] == {"pattern": "seed-results-*", "path": "results"}
    report = next(s for s in collect["steps"] if s["name"] == "Upload the round report")
    assert report["with"]["overwrite"] is True and report["if"] == "!cancelled()"


def test_gate_failure_fails_collect_only_after_statuses_and_report(workflow_file: Path) -> None:
    steps = load_yaml(workflow_file)["jobs"]["collect"]["steps"]
    names = [step["name"] for step in steps]
    compare = names.index("Compare against the baseline")
    assert "|| status=$?" in steps[compare]["run"]
    assert names.index("Post commit statuses and the check run") > compare
    assert names.index("Upload the round report") > compare
    assert names[-1] == "Fail when a gate failed"
    assert steps[-1]["env"]["COLLECT_EXIT_CODE"] == "${{ steps.collect.outputs.exit_code }}"
    assert steps[names.index("Post commit statuses and the check run")]["env"] == {
        "GITHUB_TOKEN": "${{ github.token }}"
    }


def test_cli_calls_pass_untrusted_values_through_env(workflow_file: Path) -> None:
    steps = dict(
        (step["name"], step) for _, step in steps_of(load_yaml(workflow_file)) if "run" in step
    )
    plan = steps["Plan the round"]
    assert plan["env"]["ROUND_ID"] == "${{ inputs.round_id || 'smoke' }}"
    assert 'mlx-parity plan --round "$ROUND_ID" --probes "$PROBES" --seeds "$SEEDS"' in plan["run"]
    probe = steps["Run the probe cell"]
    assert probe["env"]["PROBE"] == "${{ matrix.probe }}"
    assert 'mlx-parity probe --round "$ROUND_ID" --probe "$PROBE" --seeds "$SEEDS"' in probe["run"]
    assert steps["Install the pinned dependency set"]["env"] == {"PINS": "${{ matrix.pins }}"}
    # collect judges what plan scheduled: a dispatch's filters leave no cell "missing".
    collect = steps["Compare against the baseline"]
    assert collect["env"] == {
        "ROUND_ID": "${{ needs.plan.outputs.round_id }}",
        "PROBES": "${{ needs.plan.outputs.probes }}",
        "SEEDS": "${{ needs.plan.outputs.seeds }}",
    }
    assert (
        'mlx-parity collect results --round "$ROUND_ID" --probes "$PROBES" --seeds "$SEEDS" '
    ) in collect["run"]


def test_installs_and_caches(workflow_file: Path) -> None:
    """plan and collect install mlx-parity without MLX; a probe job its round's pin set; caches
    are keyed on what they hold."""
    workflow = load_yaml(workflow_file)
    jobs = workflow["jobs"]
    for name in ("plan", "collect"):
        install = next(s for s in jobs[name]["steps"] if s["name"] == "Install mlx-parity")
        assert install["run"].endswith("-r runner/pins/control.txt .")
        assert "mlx]" not in install["run"]
    probe = {s["name"]: s for s in jobs["probe"]["steps"]}
    assert probe["Install the pinned dependency set"]["run"].endswith(
        '-r "runner/pins/${PINS}.txt" ".[mlx]"'
    )
    assert (
        "hashFiles(format('runner/pins/{0}.txt', matrix.pins))" in probe["Cache uv"]["with"]["key"]
    )
    assert workflow["env"]["UV_CACHE_DIR"] == "${{ github.workspace }}/.mlx-parity-cache/uv"
    for what, path in (
        ("the model cache", ".mlx-parity-cache/huggingface"),
        ("compiled MLX kernels", ".mlx-parity-tmp/mlx"),
    ):
        save = probe[f"Save {what}"]
        assert save["uses"].startswith("actions/cache/save@")
        assert save["with"]["key"].endswith(f"${{{{ hashFiles('{path}/**') }}}}")
        assert save["if"] == f"always() && hashFiles('{path}/**') != ''"
    run = probe["Run the probe cell"]["env"]
    assert run["TMPDIR"].endswith("/.mlx-parity-tmp")
    assert run["HF_HOME"].endswith("/.mlx-parity-cache/huggingface")


HOSTILE_BRANCHES = ['main"; echo pwned #', "$(id)", "`id`", "a\nb", "${{ github.token }}"]


@pytest.mark.parametrize("branch", HOSTILE_BRANCHES)
def test_hostile_branch_names_are_refused_or_inert(tmp_path: Path, branch: str) -> None:
    """A branch name reaches the workflow as data (a push filter) or not at all; it never
    lands in a script, and the file stays valid for actionlint and zizmor."""
    import json

    write_overrides(tmp_path, f"[workflow]\npush_branches = [{json.dumps(branch)}]\n")
    try:
        settings = load_settings(tmp_path / "matrix")
    except Exception as exc:  # refused: the message names the key
        assert "push_branches" in str(exc)
        return
    text = render_workflow(settings)
    workflow = YAML(typ="safe").load(text)
    assert workflow["on"]["push"]["branches"] == [branch]  # exactly the data, quoted
    for _, step in steps_of(workflow):
        assert branch not in step.get("run", "")
    path = tmp_path / "wf.yml"
    path.write_text(text)
    assert actionlint(path).returncode == 0
    assert zizmor(path).returncode == 0


def test_refs_reach_no_script(workflow_file: Path) -> None:
    """Branch names and titles come from the event: no run: script may read github.ref,
    head_ref, ref_name or the event payload directly (they reach shell only through env:)."""
    workflow = load_yaml(workflow_file)
    for _, step in steps_of(workflow):
        script = step.get("run", "")
        for name in ("github.ref", "github.head_ref", "github.event", "inputs."):
            assert name not in script
