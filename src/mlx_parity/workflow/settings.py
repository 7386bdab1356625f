"""Typed settings for the generated GitHub Actions workflow: defaults in
``resources/workflow-defaults.toml``, any key overridden in ``matrix/workflow.toml`` under the same
``[workflow]`` table, resolved once into a :class:`WorkflowSettings`; a bad key is reported with
the file, the dotted key and the line."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from ..artifact import ROUND_ID_PATTERN
from ..errors import UsageError, display_path
from ..matrix import allowed_keys, list_rounds
from ..toml_index import SourceIndex, format_key

DEFAULTS_RESOURCE = "workflow-defaults.toml"
DEFAULTS_DISPLAY = f"mlx_parity/resources/{DEFAULTS_RESOURCE}"
OVERRIDES_FILE = "workflow.toml"
TABLE = "workflow"

# GitHub removes hosted images on a schedule; a workflow naming one queues forever or fails.
# macos-14 (the label the motivating workflow used) went away on 2026-11-02.
_RETIRED_LABEL = re.compile(r"^(macos-(10\.15|1[0-4])|ubuntu-(18|20)\.04|windows-2019)(-.+)?$")
# Hosted macOS labels that run on Intel: MLX needs Apple silicon, so a probe cannot run there.
_INTEL_MACOS_LABEL = re.compile(r"^macos-(\d+|latest)-(intel|large)$")

BRANCH_PATTERN = r"^[A-Za-z0-9._/*?+!\[\]-]{1,255}$"
# The oldest Python mlx-parity runs on (pyproject.toml's requires-python; a test keeps the two
# equal): a job set up with an older one fails only later, at install.
MINIMUM_PYTHON = (3, 11)


class WorkflowSettingsError(UsageError):
    """Settings that cannot produce a workflow (exit code 2, like any unusable input)."""


def _labels_as_tuple(value: Any) -> Any:
    # ``runs-on`` takes one label or a list of labels; one internal shape keeps the checks simple.
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


RunnerLabels = Annotated[tuple[str, ...], BeforeValidator(_labels_as_tuple)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionPin(_Settings):
    """One action, pinned by the full commit SHA its release tag points to."""

    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    tag: str
    sha: str

    @field_validator("tag")
    @classmethod
    def _full_release_tag(cls, tag: str) -> str:
        if not re.fullmatch(r"v\d+\.\d+\.\d+", tag):
            raise ValueError(f"must be a full release tag like v7.0.1, got {tag!r}")
        return tag

    @field_validator("sha")
    @classmethod
    def _full_commit_sha(cls, sha: str) -> str:
        # A tag or a short SHA can be moved or collide; only the full commit is immutable.
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ValueError(f"must be the full 40-hex lowercase commit SHA, got {sha!r}")
        return sha

    def uses(self, subdir: str = "") -> str:
        """This action, or the one in ``subdir`` of its repository (``actions/cache/save``)."""
        action = f"{self.repo}/{subdir}" if subdir else self.repo
        return f"{action}@{self.sha}"


class UvPin(_Settings):
    """uv, the installer every job uses, pinned by version and by the sha256 of each wheel a
    runner may install (pip refuses any other file with --require-hashes)."""

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    hashes: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1)

    @property
    def requirement(self) -> str:
        return f"uv=={self.version} " + " ".join(f"--hash=sha256:{h}" for h in self.hashes)


class ActionPins(_Settings):
    checkout: ActionPin
    setup_python: ActionPin
    upload_artifact: ActionPin
    download_artifact: ActionPin
    cache: ActionPin


# GitHub-hosted jobs stop after 6 hours; a cell that needs longer is a bug, not a setting.
_Minutes = Annotated[int, Field(ge=1, le=360, strict=True)]


class TimeoutMinutes(_Settings):
    plan: _Minutes
    probe: _Minutes
    collect: _Minutes


class WorkflowSettings(_Settings):
    path: str
    name: str = Field(min_length=1)
    python_version: str
    default_round: str = Field(pattern=ROUND_ID_PATTERN)
    # Branch filter patterns: git ref characters and GitHub's glob characters only, so a
    # hostile value cannot smuggle quotes, expressions or newlines into the file.
    push_branches: list[Annotated[str, Field(pattern=BRANCH_PATTERN)]]
    # 256 is GitHub's limit of jobs per matrix; more parallelism than jobs is meaningless.
    max_parallel: int = Field(ge=1, le=256, strict=True)
    # 90 days is the most a public repository keeps artifacts.
    artifact_retention_days: int = Field(ge=1, le=90, strict=True)
    probe_runner: RunnerLabels
    plan_runner: RunnerLabels
    collect_runner: RunnerLabels
    timeout_minutes: TimeoutMinutes
    actions: ActionPins
    uv: UvPin
    # What the checked-out repository is (mlx-parity init writes it): "mlx-parity" (this
    # project), "trainer" (a trainer's repository: the checkout is the code under test and
    # mlx-parity comes from the pins) or "parity" (a repository of rounds: everything comes
    # from the pins).
    layout: Literal["mlx-parity", "trainer", "parity"]

    @field_validator("path")
    @classmethod
    def _under_workflows_dir(cls, path: str) -> str:
        parts = PurePosixPath(path)
        if (
            parts.is_absolute()
            or ".." in parts.parts
            or parts.parent != PurePosixPath(".github/workflows")
            or parts.suffix not in (".yml", ".yaml")
        ):
            raise ValueError(
                f"must be a .yml/.yaml file directly under .github/workflows/, got {path!r}"
            )
        return path

    @field_validator("python_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # TOML reads 3.10 as the float 3.1: insist on a string so the version means what it says.
        if not isinstance(value, str) or not re.fullmatch(r"3\.\d+", value):
            raise ValueError(f'must be a quoted Python version like "3.12", got {value!r}')
        if (3, int(value.split(".")[1])) < MINIMUM_PYTHON:
            oldest = ".".join(map(str, MINIMUM_PYTHON))
            raise ValueError(f"mlx-parity needs Python {oldest} or newer, got {value!r}")
        return value

    @field_validator("push_branches")
    @classmethod
    def _unique_branches(cls, branches: list[str]) -> list[str]:
        if len(set(branches)) != len(branches):
            raise ValueError(f"repeats a branch: {branches}")
        return branches

    @field_validator("probe_runner", "plan_runner", "collect_runner")
    @classmethod
    def _usable_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if not labels:
            raise ValueError("names no runner label")
        if len(set(labels)) != len(labels):
            raise ValueError(f"repeats a runner label: {list(labels)}")
        for label in labels:
            if not label or label != label.strip() or "${{" in label:
                raise ValueError(f"runner label {label!r} must be a plain, non-empty label")
            if label.lower() == "macos-14" or label.lower().startswith("macos-14-"):
                raise ValueError(
                    f"runner label {label!r} is retired: GitHub removed the macOS 14 images on "
                    "2026-11-02, so jobs on it never run; use macos-15 (the default), macos-26, "
                    "macos-latest or a self-hosted Apple-silicon runner"
                )
            if _RETIRED_LABEL.match(label.lower()):
                raise ValueError(f"runner label {label!r} names a retired GitHub-hosted image")
        return labels

    @field_validator("probe_runner")  # after _usable_labels: pydantic keeps definition order
    @classmethod
    def _apple_silicon_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        for label in labels:
            if _INTEL_MACOS_LABEL.match(label.lower()):
                raise ValueError(
                    f"runner label {label!r} is an Intel image; MLX needs Apple silicon "
                    "(macos-15, macos-26, macos-latest, or a self-hosted arm64 runner)"
                )
        return labels


def load_settings(matrix_dir: Path) -> WorkflowSettings:
    """Defaults, overridden by ``<matrix>/workflow.toml`` when that file exists."""
    defaults_file = resources.files("mlx_parity").joinpath("resources", DEFAULTS_RESOURCE)
    defaults_text = defaults_file.read_text(encoding="utf-8")
    defaults = _parse_toml(defaults_text, DEFAULTS_DISPLAY)
    override_path = Path(matrix_dir) / OVERRIDES_FILE
    override_text = override_path.read_text(encoding="utf-8-sig") if override_path.is_file() else ""
    shown = display_path(override_path)
    overrides = _parse_toml(override_text, shown)
    for key in overrides:
        if key != TABLE:
            raise WorkflowSettingsError(
                f"{_where(shown, override_text, (key,))}: unknown key {key!r}; "
                f"settings belong in the [{TABLE}] table"
            )
    table_overrides = overrides.get(TABLE, {})

    def where(loc: tuple[Any, ...]) -> str:
        """``file:line`` of ``loc``: in the override file when it sets it, else the defaults."""
        names = (TABLE, *(part for part in loc if isinstance(part, str)))
        if _has_path(table_overrides, loc):
            return _where(shown, override_text, names)
        return _where(DEFAULTS_DISPLAY, defaults_text, names)

    merged = _deep_merge(defaults.get(TABLE, {}), table_overrides)
    try:
        settings = WorkflowSettings.model_validate(merged)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (not a workflow setting" + _did_you_mean(loc) + ")"
            messages.append(f"{where(loc)}: {format_key((TABLE, *loc))}: {message}")
        raise WorkflowSettingsError(
            "invalid workflow settings\n  " + "\n  ".join(messages)
        ) from None
    # Checked here, not in the model: only the matrix knows its rounds. A push would otherwise
    # start a workflow whose plan job fails on every commit.
    rounds = list_rounds(matrix_dir)
    if rounds and settings.default_round not in rounds:
        raise WorkflowSettingsError(
            f"{where(('default_round',))}: {TABLE}.default_round: "
            f"no round {settings.default_round!r} in {display_path(Path(matrix_dir))} "
            f"(its rounds: {', '.join(rounds)})"
        )
    return settings


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """``; did you mean 'python_version'?`` for a misspelt key, from the model at ``loc``."""
    fields = allowed_keys(WorkflowSettings, loc[:-1])
    if fields is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else "; check the spelling"


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowSettingsError(f"{source}: not valid TOML: {exc}") from None


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    # Tables merge key by key so an override can change one pin or one timeout; anything
    # else (values, lists) replaces the default outright.
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(data: Any, loc: tuple[Any, ...]) -> bool:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _where(source: str, text: str, path: tuple[str, ...]) -> str:
    """``source:line`` of a dotted key (or of its table when the key itself is absent)."""
    line = SourceIndex(text).line_of(path)
    return f"{source}:{line}" if line else source
