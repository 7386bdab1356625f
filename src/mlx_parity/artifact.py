"""The seed result: one JSON artifact per (round, probe, seed), the unit everything exchanges.

Floats are stored exactly: a float32 loss widened to a Python float prints as the shortest
repr that parses back to the same double, so traces compare bitwise after a JSON round trip.
Non-finite values are written as the strings "NaN", "Infinity", "-Infinity" (plain JSON has no
literal for them) and read back as floats.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict

from .noise import NoiseSample

SCHEMA = "mlx-parity/seed-result/v1"
ROUND_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
PROBE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The largest seed: mx.random.seed and numpy's seed take an unsigned 32-bit integer.
SEED_MAX = 2**32 - 1

_FLOAT_CONFIG = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class Row(TypedDict):
    """One micro-step. A typed dict, not a model: pydantic validates 300,000 of these per
    10,000 artifacts faster than ``json.loads`` parses them, where model rows cost 2.5x that."""

    __pydantic_config__ = _FLOAT_CONFIG  # type: ignore[misc]

    step: Annotated[int, Field(ge=1)]
    loss: float
    grad_norm: float | None
    ntoks: Annotated[int, Field(ge=0)]
    input_shape: tuple[int, int]
    lr: float
    batch: NotRequired[str | None]
    updates: NotRequired[int | None]


DeviceChoice = Literal["auto", "gpu", "cpu"]


class DeviceCheck(BaseModel):
    """What every seed result records about the device it trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    requested: DeviceChoice
    trained_on: Literal["gpu", "cpu"]
    # The device trained on, as MLX reports it (device_info); the GPU's name when there is one.
    name: str
    architecture: str
    memory_bytes: int | None = None
    info: dict[str, str | int] = {}
    gpu_name: str | None = None
    # Per computation: max |default − cpu| / max |cpu|. Empty when there was no GPU to compare.
    differences: dict[str, float] = {}
    passed: bool
    reason: str

    @property
    def label(self) -> str:
        """``gpu (Apple M2)`` — what reports show per seed."""
        return f"{self.trained_on} ({self.name})" if self.name else self.trained_on


class Environment(BaseModel):
    model_config = ConfigDict(extra="allow")

    mlx: str
    mlx_lm: str
    python: str
    platform: str
    device: str
    runner: str
    git_sha: str | None = None
    # Where the seed trained and whether that device passed the self-check (device.py).
    device_check: DeviceCheck | None = None


class SeedResult(BaseModel):
    model_config = _FLOAT_CONFIG

    schema_: Literal["mlx-parity/seed-result/v1"] = Field(SCHEMA, alias="schema")
    round_id: str = Field(pattern=ROUND_ID_PATTERN)
    probe_id: str = Field(pattern=PROBE_ID_PATTERN)
    seed: int = Field(ge=0, le=SEED_MAX, strict=True)
    trainer: str
    fixture: dict[str, Any]
    config: dict[str, Any]
    # The probe's options, as a plugin trainer was given them (request.options): they change
    # what it trains, so they belong with the knobs in what a seed trained with.
    options: dict[str, Any] = Field(default_factory=dict)
    environment: Environment
    rows: list[Row]
    post_train_loss: float | None = None
    cf_loss: float | None = None
    generation: str | None = None
    passed: bool = False
    status: Literal["ok", "nonfinite", "error"]
    # The full traceback when the run failed.
    error: str | None = None
    # Settings a plugin declared its trainer cannot honour, with why.
    unhonoured: dict[str, str] = Field(default_factory=dict)
    # The last lines the trainer printed (captured, never shown on the terminal).
    output_tail: str | None = None
    # On a baseline's first seeds: how far equivalent variants of the core drift from this
    # trace (mlx_parity/noise.py); the round's noise floor is built from these.
    noise: NoiseSample | None = None
    timings: dict[str, float] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)

    @property
    def error_summary(self) -> str:
        """The recorded traceback's last line, which names the exception."""
        lines = (self.error or "").strip().splitlines()
        return lines[-1] if lines else "no error message recorded"

    def comparable(self) -> dict[str, Any]:
        """Everything but timings and environment details that vary run to run."""
        return self.model_dump(by_alias=True, exclude={"timings"})


class ArtifactError(Exception):
    """An artifact that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def artifact_name(round_id: str, probe_id: str, seed: int) -> str:
    return f"{round_id}__{probe_id}__seed{seed}.json"


ARTIFACT_NAME_RE = re.compile(r"^(?P<round>[^_].*?)__(?P<probe>.+?)__seed(?P<seed>-?\d+)\.json$")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` is either absent or complete, never half-written. A path
    that is not a regular file is written through, never replaced: a symbolic link's target is
    the file replaced, and a device or pipe (``/dev/stdout``, ``/dev/null``) is written to."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    if path.exists() and not path.is_file():
        with open(path, "w") as handle:
            handle.write(text)
        return
    path = Path(os.path.realpath(path))
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is not a directory", str(path.parent))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; artifacts and reports are meant to be shared like any file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(result: SeedResult, out_dir: Path) -> Path:
    path = Path(out_dir) / artifact_name(result.round_id, result.probe_id, result.seed)
    write_atomic(path, result.to_json() + "\n")
    return path


def load(path: Path) -> SeedResult:
    """Read and validate one artifact; any problem becomes an :class:`ArtifactError`."""
    path = Path(path)
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ArtifactError(path, f"unreadable ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArtifactError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ArtifactError(path, "not a JSON object")
    if data.get("schema") != SCHEMA:
        raise ArtifactError(path, f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
    try:
        return SeedResult.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(path, f"invalid field {where!r}: {first['msg']}") from None


def json_schema() -> dict[str, Any]:
    return SeedResult.model_json_schema(by_alias=True)
