"""The matrix: the probe catalog (``matrix/probes.toml``), settings every round shares
(``matrix/defaults.toml``) and one file per round (``matrix/rounds/<id>.toml``), resolved once
into a :class:`ResolvedRound` that every command uses. Every refusal is a :class:`MatrixError`
naming the file, the key and the line, because the people who edit these files read the error in
a CI log, far from an editor (:class:`SourceIndex` finds the lines ``tomllib`` does not report)."""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .artifact import ROUND_ID_PATTERN, SEED_MAX, DeviceChoice
from .errors import UsageError, display_path
from .fixture import SMOKE, Fixture
from .knobs import KnobError, Knobs, apply
from .noise import CALIBRATION_SEEDS
from .probes import BUILTIN_PROBES, Expectation, Probe, default_expectation
from .toml_index import KeyPath, SourceIndex, format_key
from .trainers import TrainerError, TrainerSpec, lookup

MATRIX_ENV = "MLX_PARITY_MATRIX"
# How commands describe their --matrix option (one wording, one default everywhere).
MATRIX_HELP = (
    f"matrix directory (default: ${MATRIX_ENV}, else the nearest matrix/ above the working "
    "directory, else the rounds shipped with mlx-parity)"
)
PROBES_FILE = "probes.toml"
DEFAULTS_FILE = "defaults.toml"
ROUNDS_DIR = "rounds"
# Pin sets live beside the matrix: <matrix>/../runner/pins/<name>.txt.
PINS_DIR = Path("runner") / "pins"
# A pin-set name becomes a file name, so it gets the same conservative alphabet as round IDs.
PIN_NAME_PATTERN = ROUND_ID_PATTERN
_Model = TypeVar("_Model", bound=BaseModel)
# Passed as validation context by the loaders, which run the cross-field checks themselves so
# each refusal can point at the exact key (a model validator only knows the whole model).
_DEFER_CHECKS = "defer_checks"


# --- errors ---------------------------------------------------------------------------------


class MatrixError(UsageError):
    """A matrix file (or a round ID) that cannot be used. Reads
    ``matrix/rounds/demo.toml:12: key 'probes[2]': unknown probe 'clip-of' (known: ...)``."""

    def __init__(
        self, file: Path, reason: str, key: str | None = None, line: int | None = None
    ) -> None:
        self.file = Path(file)
        self.reason = reason
        self.key = key
        self.line = line
        where = display_path(self.file) + (f":{line}" if line is not None else "")
        named = f" key {key!r}:" if key is not None else ""
        super().__init__(f"{where}:{named} {reason}")


@dataclass(frozen=True)
class Problem:
    path: KeyPath
    message: str


_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass
class TomlSource:
    """One matrix file: its parsed data plus the index that turns problems into errors."""

    file: Path
    data: dict[str, Any]
    index: SourceIndex

    @classmethod
    def read(cls, file: Path) -> TomlSource:
        try:
            # utf-8-sig: editors on Windows save a byte-order mark that tomllib refuses.
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise MatrixError(file, f"cannot read the file: {exc}") from None
        index = SourceIndex(text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise syntax_error(file, text, index, exc) from None
        return cls(file, data, index)

    def parse(self, model: type[_Model], data: Any = None, context: Any = None) -> _Model:
        """The file's data (or ``data``) as ``model``; refused with file, key and line."""
        try:
            return model.model_validate(self.data if data is None else data, context=context)
        except ValidationError as exc:
            self.refuse(validation_problems(exc, model))
            raise  # unreachable: refuse raised

    def refuse(self, problems: list[Problem]) -> None:
        """Raise for the problem nearest the top of the file (those without a line last); do
        nothing when there are none."""
        if not problems:
            return
        first, *others = sorted(problems, key=lambda p: self.index.line_of(p.path) or math.inf)
        # The rest are named too, briefly, so one edit can fix them all.
        also = [f"{self._where(p)}{p.message}" for p in others[:3]]
        if len(others) > 3:
            also.append(f"{len(others) - 3} more")
        reason = first.message + (f" (also {'; '.join(also)})" if also else "")
        key = format_key(first.path) if first.path else None
        raise MatrixError(self.file, reason, key, self.index.line_of(first.path))

    def _where(self, problem: Problem) -> str:
        line = self.index.line_of(problem.path)
        key = f"key {format_key(problem.path)!r}" if problem.path else ""
        place = ", ".join(part for part in (f"line {line}" if line else "", key) if part)
        return f"{place}: " if place else ""


def syntax_error(
    file: Path, text: str, index: SourceIndex, exc: tomllib.TOMLDecodeError
) -> MatrixError:
    match = _TOML_POSITION.search(str(exc))
    line = int(match.group(1)) if match else max(1, len(text.splitlines()))
    reason = f"TOML syntax error: {_TOML_POSITION.sub('', str(exc)).strip()}"
    key = index.last_key_before(line) or ()
    if key and isinstance(key[-1], int):
        # Inside an array the element is a guess; the array itself is what failed to parse.
        while isinstance(key[-1], int):  # every path starts with a name
            key = key[:-1]
    elif index.line_of(key) != line:
        # The last key that parsed lies on an earlier line (the broken line is often a table
        # header the index could not read): naming it would point at the wrong key.
        key = ()
    return MatrixError(file, reason, format_key(key) if key else None, line)


def validation_problems(
    exc: ValidationError, model: type[BaseModel], prefix: KeyPath = ()
) -> list[Problem]:
    """Pydantic's errors as problems whose messages a TOML author understands."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = allowed_keys(model, loc[:-1])
            message = "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        problems.append(Problem((*prefix, *loc), message))
    return problems


def allowed_keys(model: type[BaseModel], loc: KeyPath) -> list[str] | None:
    """The field names of the model found at ``loc`` inside ``model``, if it is one."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return list(model.model_fields)


# What a cross-knob error adds for a terminal but is noise in a file's error: the pseudo-knob
# name 'knobs' and a dump of every knob's value.
_WHOLE_KNOBS_NOISE = re.compile(r"knob 'knobs': (Value error, )?|\s*\(got \{.*?\}\)(?=;|$)")


def knob_problems(overrides: dict[str, Any], where: KeyPath) -> list[Problem]:
    """Validate knob overrides; the problem points at the offending knob when one alone fails,
    or at the whole table when only the combination is wrong (e.g. warmup without steps)."""
    try:
        apply(Knobs(), overrides)
        return []
    except KnobError as whole:
        for name, value in overrides.items():
            try:
                apply(Knobs(), {name: value})
            except KnobError as exc:
                return [Problem((*where, name), _WHOLE_KNOBS_NOISE.sub("", str(exc)))]
        return [Problem(where, _WHOLE_KNOBS_NOISE.sub("", str(whole)))]


# --- the models -----------------------------------------------------------------------------


class Gates(BaseModel):
    """What makes a round fail besides a probe missing its declared parity expectation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Smoke gate: every seed's cf_loss must be below this.
    cf_loss_max: float = Field(0.5, gt=0)
    # A seed without a valid artifact fails the round (never silently dropped).
    require_all_seeds: bool = True
    # An explicit per-step |Δloss| still called "close" (0: only bitwise equality). None: the
    # noise floor the baseline's cell measured (mlx_parity/noise.py); bitwise without one.
    trace_tolerance: float | None = Field(None, ge=0)
    # Seeds per probe allowed to end with status "error" before the round fails.
    max_error_seeds: int = Field(0, ge=0)
    # Fail the round when a probe's pass rate differs from the baseline's (paired exact McNemar,
    # Holm across probes). Off by default: a parity round judges traces; turn it on to guard a
    # trainer's outcomes as well.
    outcome: bool = False


class Cell(BaseModel):
    """One job on a runner: one probe of one round over a shard of its seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    round_id: str
    probe_id: str
    seeds: list[int]
    index: int = Field(ge=0)

    @property
    def name(self) -> str:
        # The index is the only part without '-', so names stay unique within a round; every
        # character comes from the ID alphabets, which GitHub artifact names accept.
        return f"{self.round_id}-{self.probe_id}-{self.index}"


class Round(BaseModel):
    """One hypothesis tested by a set of probes over the same seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ROUND_ID_PATTERN)
    hypothesis: str = Field(min_length=1)
    probes: list[str] = Field(min_length=1)
    baseline: str = "reference"
    # Strict: a quoted "42" is a mistake in the file, not a seed.
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX, strict=True)]] = Field(min_length=1)
    fixture: Fixture = SMOKE
    # Knob overrides for every probe of the round (training settings such as steps or lr).
    settings: dict[str, Any] = Field(default_factory=dict)
    pins: str = Field("default", pattern=PIN_NAME_PATTERN)
    gates: Gates = Field(default_factory=Gates)
    # None: one cell per probe with every seed; n: cells of at most n seeds.
    seeds_per_cell: int | None = Field(None, ge=1)
    # Per-round parity expectations overriding the catalog's (e.g. where this fixture makes a
    # knob diverge that is harmless elsewhere).
    expect: dict[str, Expectation] = Field(default_factory=dict)
    # Where probes train: "auto" uses the GPU only if it passes the device self-check (else the
    # CPU, with the reason in every seed result), "gpu" refuses to train without a GPU that
    # passes, "cpu" never uses the GPU.
    device: DeviceChoice = "auto"

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Round:
        deferred = (info.context or {}).get(_DEFER_CHECKS)
        if not deferred and (problems := self.problems()):
            raise ValueError("; ".join(f"{format_key(p.path)}: {p.message}" for p in problems))
        return self

    def problems(self) -> list[Problem]:
        """Cross-field problems a round can have without looking at the catalog."""
        problems = _duplicates(self.seeds, "seeds", "seed")
        problems += _duplicates(self.probes, "probes", "probe")
        if self.baseline not in self.probes:
            problems.append(
                Problem(("baseline",), f"baseline {self.baseline!r} is not among the probes")
            )
        for probe_id in self.expect:
            if probe_id not in self.probes:
                problems.append(Problem(("expect", probe_id), "names a probe the round lacks"))
        return problems + knob_problems(self.settings, ("settings",))

    def knobs_for(self, probe: Probe) -> Knobs:
        """The probe's knobs on top of the round's settings."""
        return probe.resolved(apply(Knobs(), self.settings))


def _duplicates(values: list, field: str, what: str) -> list[Problem]:
    first_index: dict[Any, int] = {}
    return [
        Problem((field, index), f"duplicate {what} {value!r} (also {format_key((field, first))})")
        for index, value in enumerate(values)
        if (first := first_index.setdefault(value, index)) != index
    ]


class Catalog(BaseModel):
    """Every probe a round may name, by ID; the built-in ``reference`` and ``core`` always."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probes: dict[str, Probe] = Field(default_factory=lambda: dict(BUILTIN_PROBES))
    source: Path | None = None

    def get(self, probe_id: str) -> Probe:
        try:
            return self.probes[probe_id]
        except KeyError:
            known = ", ".join(self.probes)
            raise MatrixError(
                self.source or Path(PROBES_FILE),
                f"unknown probe {probe_id!r} (known: {known})",
                key=f"probes.{probe_id}",
            ) from None


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class _ProbeEntry(BaseModel):
    """A probe as written in the catalog: the ID is the table name, not a key."""

    model_config = ConfigDict(extra="forbid")

    trainer: str = "core"
    description: str = ""
    knobs: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    expect: Expectation | None = None


# --- finding and loading --------------------------------------------------------------------


def find_matrix_dir(start: Path | None = None) -> Path:
    """``$MLX_PARITY_MATRIX``, else the nearest ``matrix/`` above ``start`` (default: the
    working directory), else the matrix shipped inside the package."""
    if configured := os.environ.get(MATRIX_ENV):
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise MatrixError(path, f"${MATRIX_ENV} names no directory")
        return path
    here = (start or Path.cwd()).absolute()
    for matrix in (folder / "matrix" for folder in (here, *here.parents)):
        # Demand matrix content, so an unrelated folder that is merely named "matrix" is skipped.
        if (matrix / PROBES_FILE).is_file() or (matrix / ROUNDS_DIR).is_dir():
            return matrix
    return packaged_matrix_dir()


def packaged_matrix_dir() -> Path:
    shipped = resources.files("mlx_parity") / "resources" / "matrix"
    if not isinstance(shipped, Path) or not shipped.is_dir():
        raise MatrixError(Path(str(shipped)), "the package ships no matrix directory")
    return shipped


def load_catalog(matrix_dir: Path | None = None) -> Catalog:
    """The catalog in ``<matrix>/probes.toml`` plus the built-in probes it does not redefine."""
    file = (matrix_dir or find_matrix_dir()) / PROBES_FILE
    if not file.is_file():
        return Catalog()
    source = TomlSource.read(file)
    parsed = source.parse(_CatalogFile)
    probes = dict(BUILTIN_PROBES)
    problems: list[Problem] = []
    for probe_id, table in parsed.probes.items():
        probe, found = _catalog_probe(probe_id, table)
        problems += found
        if probe is not None:
            problems += _builtin_redefinition(probe)
            probes[probe_id] = probe
    problems += _case_collisions(list(parsed.probes))
    source.refuse(problems)
    return Catalog(probes=probes, source=file)


def _catalog_probe(probe_id: str, table: dict[str, Any]) -> tuple[Probe | None, list[Problem]]:
    where: KeyPath = ("probes", probe_id)
    try:
        entry = _ProbeEntry.model_validate(table)
    except ValidationError as exc:
        return None, validation_problems(exc, _ProbeEntry, where)
    if problems := knob_problems(entry.knobs, (*where, "knobs")):
        return None, problems
    try:
        probe = Probe(id=probe_id, **entry.model_dump())
    except ValidationError as exc:
        return None, validation_problems(exc, Probe, where)
    return probe, _trainer_problems(probe, apply(Knobs(), probe.knobs), where)


def _trainer_problems(probe: Probe, knobs: Knobs, where: KeyPath) -> list[Problem]:
    try:
        spec = lookup(probe.trainer)
    except TrainerError as exc:
        return [Problem((*where, "trainer"), str(exc))]
    try:
        spec.check_knobs(knobs)
    except TrainerError as exc:
        return [Problem(where, str(exc))]
    return []


def _builtin_redefinition(probe: Probe) -> list[Problem]:
    """A catalog may describe ``reference`` and ``core`` (and declare their expectation), but
    not change what they run: every report relies on those two meaning the same everywhere."""
    builtin = BUILTIN_PROBES.get(probe.id)
    if builtin is None:
        return []
    same_knobs = apply(Knobs(), probe.knobs) == apply(Knobs(), builtin.knobs)
    if probe.trainer == builtin.trainer and same_knobs:
        return []
    message = (
        f"redefines the built-in probe {probe.id!r} (trainer {builtin.trainer!r}, "
        "every knob at mlx-lm's value); keep it identical or choose another ID"
    )
    return [Problem(("probes", probe.id), message)]


def _case_collisions(probe_ids: list[str]) -> list[Problem]:
    # GitHub artifact names compare case-insensitively, so 'Core' and 'core' would collide.
    seen: dict[str, str] = {}
    return [
        Problem(("probes", probe_id), f"differs from probe {other!r} only by case")
        for probe_id in probe_ids
        if (other := seen.setdefault(probe_id.lower(), probe_id)) != probe_id
    ]


def check_round_id(round_id: str, matrix_dir: Path | None = None) -> None:
    """Refuse a round ID before it becomes part of a path (``../x``, ``$(cmd)``, ``a;b``)."""
    if not isinstance(round_id, str) or not re.fullmatch(ROUND_ID_PATTERN, round_id):
        raise MatrixError(
            (matrix_dir or Path("matrix")) / ROUNDS_DIR,
            f"round ID {round_id!r} is not valid: use 1-40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            key="id",
        )


def list_rounds(matrix_dir: Path | None = None) -> list[str]:
    rounds_dir = (matrix_dir or find_matrix_dir()) / ROUNDS_DIR
    if not rounds_dir.is_dir():
        return []
    return sorted(
        file.stem
        for file in rounds_dir.glob("*.toml")
        if re.fullmatch(ROUND_ID_PATTERN, file.stem) and file.is_file()
    )


class _DefaultsFile(BaseModel):
    """Settings and gates every round of the matrix starts from; a round file overrides them
    key by key."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] = Field(default_factory=dict)
    gates: dict[str, Any] = Field(default_factory=dict)


def load_defaults(matrix_dir: Path) -> _DefaultsFile:
    file = matrix_dir / DEFAULTS_FILE
    if not file.is_file():
        return _DefaultsFile()
    source = TomlSource.read(file)
    defaults = source.parse(_DefaultsFile)
    problems = knob_problems(defaults.settings, ("settings",))
    try:
        Gates.model_validate(defaults.gates)
    except ValidationError as exc:
        problems += validation_problems(exc, Gates, ("gates",))
    source.refuse(problems)
    return defaults


def load_round(round_id: str, matrix_dir: Path) -> tuple[Round, Catalog]:
    """``<matrix>/rounds/<round_id>.toml`` on top of the matrix's defaults, validated against
    the catalog and the pin sets."""
    check_round_id(round_id, matrix_dir)
    file = matrix_dir / ROUNDS_DIR / f"{round_id}.toml"
    if not file.is_file():
        known = ", ".join(list_rounds(matrix_dir)) or "none"
        raise MatrixError(file, f"no round {round_id!r} (known rounds: {known})")
    defaults = load_defaults(matrix_dir)
    source = TomlSource.read(file)
    catalog = load_catalog(matrix_dir)
    data = dict(source.data)
    if data.setdefault("id", round_id) != round_id:
        source.refuse([Problem(("id",), f"must be the file name's round ID {round_id!r}")])
    for table in ("settings", "gates"):
        own = data.get(table, {})
        if isinstance(own, dict):  # anything else is left for the model to refuse
            data[table] = {**getattr(defaults, table), **own}
    round_ = source.parse(Round, data, context={_DEFER_CHECKS: True})
    source.refuse(round_.problems())
    source.refuse(catalog_problems(round_, catalog))
    source.refuse(pins_problems(round_, matrix_dir))
    return round_, catalog


@dataclass(frozen=True)
class ResolvedProbe:
    """A probe as a round runs it: its trainer, its knobs under the round's settings, and what
    the collector should find against the baseline."""

    probe: Probe
    trainer: TrainerSpec
    knobs: Knobs
    expect: Expectation

    @property
    def id(self) -> str:
        return self.probe.id


@dataclass(frozen=True)
class ResolvedRound:
    """A round resolved once: every command that needs a round gets this."""

    round: Round
    catalog: Catalog
    probes: dict[str, ResolvedProbe]
    matrix_dir: Path | None = None

    @property
    def id(self) -> str:
        return self.round.id

    @property
    def seeds(self) -> list[int]:
        return self.round.seeds

    @property
    def fixture(self) -> Fixture:
        return self.round.fixture

    @property
    def gates(self) -> Gates:
        return self.round.gates

    @property
    def baseline(self) -> ResolvedProbe:
        return self.probes[self.round.baseline]

    def calibration_seeds(self, probe_id: str) -> list[int]:
        """The seeds on which ``probe_id``'s cell also measures the noise floor: the baseline's
        first ``CALIBRATION_SEEDS`` (mlx_parity/noise.py), no others."""
        if probe_id != self.round.baseline or self.gates.trace_tolerance is not None:
            return []
        return self.seeds[:CALIBRATION_SEEDS]

    def probe(self, probe_id: str) -> ResolvedProbe:
        self._selected([probe_id], list(self.probes), "probe")  # refuses an unknown probe
        return self.probes[probe_id]

    def cells(
        self, probe_filter: list[str] | None = None, seed_filter: list[int] | None = None
    ) -> list[Cell]:
        """The round's jobs, probes in round order. Seeds are sharded before filtering, so a
        seed keeps its cell name whatever the filter; an empty filter means "everything", and a
        probe filter selects exactly the probes it names (the baseline is not added)."""
        probe_ids = self._selected(probe_filter, list(self.probes), "probe")
        seeds = set(self._selected(seed_filter, self.seeds, "seed"))
        size = self.round.seeds_per_cell or len(self.seeds)
        shards = [self.seeds[i : i + size] for i in range(0, len(self.seeds), size)]
        return [
            Cell(round_id=self.id, probe_id=probe_id, seeds=chosen, index=index)
            for probe_id in probe_ids
            for index, shard in enumerate(shards)
            if (chosen := [seed for seed in shard if seed in seeds])
        ]

    def selected(self, probe_filter: list[str], seed_filter: list[int]) -> ResolvedRound:
        """The round cut down to what a filtered run planned, for judging it: the probes
        ``probe_filter`` names plus the baseline, the seeds ``seed_filter`` names (an empty
        filter keeps everything). Not for planning: its cells and calibration seeds are the
        full round's, which a cut-down seed list would rename and move."""
        wanted = [*probe_filter, self.round.baseline] if probe_filter else []
        probe_ids = self._selected(wanted, list(self.probes), "probe")
        seeds = self._selected(seed_filter, self.seeds, "seed")
        round_ = self.round.model_copy(update={"probes": probe_ids, "seeds": seeds})
        probes = {probe_id: self.probes[probe_id] for probe_id in probe_ids}
        return replace(self, round=round_, probes=probes)

    def _selected(self, wanted: list | None, available: list, what: str) -> list:
        if not wanted:
            return list(available)
        unknown = [value for value in wanted if value not in available]
        if unknown:
            listed = ", ".join(str(v) for v in available)
            raise UsageError(
                f"round {self.id!r} has no {what} {', '.join(map(repr, unknown))} "
                f"(its {what}s: {listed})"
            )
        return [value for value in available if value in wanted]


def resolve(round_: Round, catalog: Catalog, matrix_dir: Path | None = None) -> ResolvedRound:
    """Resolve a validated round against its catalog (no loading, no checks repeated)."""
    probes = {}
    for probe_id in round_.probes:
        probe = catalog.get(probe_id)
        trainer = lookup(probe.trainer)
        expect = (
            round_.expect.get(probe_id) or probe.expect or default_expectation(trainer.is_plugin)
        )
        probes[probe_id] = ResolvedProbe(probe, trainer, round_.knobs_for(probe), expect)
    return ResolvedRound(round_, catalog, probes, matrix_dir)


def resolve_round(round_id: str, matrix_dir: Path | None = None) -> ResolvedRound:
    """The round, its catalog, each probe's trainer and knobs, and its cells: loaded and
    checked once. Imports no trainer: a plugin's name is checked for form only."""
    check_round_id(round_id, matrix_dir)
    matrix_dir = matrix_dir or find_matrix_dir()
    round_, catalog = load_round(round_id, matrix_dir)
    return resolve(round_, catalog, matrix_dir)


def local_round() -> ResolvedRound:
    """The built-in probes on the smoke fixture at mlx-lm's values: what ``probe`` runs when no
    round is named."""
    round_ = Round(
        id="local",
        hypothesis="the built-in probes on the smoke fixture",
        probes=list(BUILTIN_PROBES),
        seeds=[0],
    )
    return resolve(round_, Catalog())


def catalog_problems(round_: Round, catalog: Catalog) -> list[Problem]:
    """Every probe exists and can run under the round's settings."""
    problems = []
    for index, probe_id in enumerate(round_.probes):
        where: KeyPath = ("probes", index)
        probe = catalog.probes.get(probe_id)
        if probe is None:
            known = ", ".join(catalog.probes)
            problems.append(Problem(where, f"unknown probe {probe_id!r} (known: {known})"))
            continue
        try:
            knobs = round_.knobs_for(probe)
        except KnobError as exc:
            reasons = [str(exc)]
        else:
            reasons = [problem.message for problem in _trainer_problems(probe, knobs, where)]
        problems += [
            Problem(where, f"probe {probe_id!r} with the round's settings: {reason}")
            for reason in reasons
        ]
    return problems


def pins_problems(round_: Round, matrix_dir: Path) -> list[Problem]:
    """The pin set must exist where the runner looks for it (checked only when the pin sets
    ship beside the matrix; an installed package may carry the matrix alone)."""
    pins_dir = matrix_dir.parent / PINS_DIR
    if not pins_dir.is_dir() or (pins_dir / f"{round_.pins}.txt").is_file():
        return []
    known = ", ".join(sorted(p.stem for p in pins_dir.glob("*.txt"))) or "none"
    message = f"no pinned dependency set {PINS_DIR / (round_.pins + '.txt')} (known: {known})"
    return [Problem(("pins",), message)]
