"""Read a directory of seed results into the round's (probe, seed) cells, never crashing.

Downloaded artifacts arrive nested (one folder per artifact, named by cell and run attempt),
from several attempts of a re-run (each cell's newest attempt is used), truncated by a
cancelled job, from another round, twice, or not at all. Each of these becomes a
:class:`Problem` naming the file or the cell, so nothing is silently dropped. A problem is
*blocking* when it means the round lacks data it planned (an unreadable file, two different
results for one cell, a missing cell); the others are notes about extra or failed runs.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..artifact import ARTIFACT_NAME_RE, ArtifactError, SeedResult, load
from ..matrix import ResolvedRound
from ..names import REPORT_JSON, parse_seed_artifact

# Reports are JSON too and may lie among the artifacts; they are recognised by this schema and
# skipped (see written_report) rather than flagged as broken artifacts.
REPORT_SCHEMA = "mlx-parity/round-report/v1"

ProblemKind = Literal[
    "invalid",
    "not-an-artifact",
    "other-round",
    "unknown-probe",
    "unknown-seed",
    "duplicate",
    "duplicate-identical",
    "missing",
    "run-error",
    "run-nonfinite",
    "config-mismatch",
    "superseded",
    "earlier-attempt",
]

# Kinds that mean the round lacks planned data; they fail the artifacts gate.
BLOCKING_KINDS: frozenset[str] = frozenset({"invalid", "duplicate", "missing"})


class Problem(BaseModel):
    """Something about the inputs a reader must see: which file or cell, and what is wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProblemKind
    # File names (relative to the collected directory) or a cell such as "core seed 42".
    subject: str
    detail: str
    probe: str | None = None
    seed: int | None = None

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_KINDS


@dataclass
class Gathered:
    """The round's usable seed results, where each came from, and every problem met."""

    results: dict[str, dict[int, SeedResult]]
    files: dict[tuple[str, int], str]
    problems: list[Problem] = field(default_factory=list)
    files_seen: int = 0


def find_artifact_files(directory: Path) -> tuple[list[str], list[str]]:
    """Every ``*.json`` file below ``directory`` as a POSIX path relative to it, sorted; and,
    apart, every folder named like one (read through, but named if its cell goes missing).
    (os.walk and plain strings: pathlib costs a third of a second per 10,000 files.)"""
    files, folders = [], []
    for folder, subfolders, names in os.walk(directory):
        relative = os.path.relpath(folder, directory)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        files += [prefix + name for name in names if name.endswith(".json")]
        folders += [prefix + name for name in subfolders if name.endswith(".json")]
    return sorted(files), sorted(folders)


def newest_attempts(files: list[str], attempt: int | None) -> tuple[list[str], list[Problem]]:
    """Keep, per cell, only the files of its newest attempt's artifact folder (a re-run of
    failed jobs leaves the other cells' earlier attempts as their current results). Files
    outside such folders are all kept. ``attempt`` is this run's attempt, if known."""
    folders: dict[str, dict[int, str]] = {}
    for name in files:
        top = name.split("/", 1)[0]
        if (parsed := parse_seed_artifact(top)) is not None:
            folders.setdefault(parsed[0], {})[parsed[1]] = top
    dropped: set[str] = set()
    problems = []
    for cell, by_attempt in sorted(folders.items()):
        newest = max(by_attempt)
        for older in sorted(set(by_attempt) - {newest}):
            dropped.add(by_attempt[older])
            detail = f"attempt {older} of cell {cell}, superseded by attempt {newest}; ignored"
            problems.append(Problem(kind="superseded", subject=by_attempt[older], detail=detail))
        if attempt is not None and newest < attempt:
            stale = f"cell {cell} was not re-run in attempt {attempt}"
            detail = f"{stale}: its results are attempt {newest}'s"
            problem = Problem(kind="earlier-attempt", subject=by_attempt[newest], detail=detail)
            problems.append(problem)
    kept = [name for name in files if name.split("/", 1)[0] not in dropped] if dropped else files
    return kept, problems


def gather(directory: Path, round_: ResolvedRound, attempt: int | None = None) -> Gathered:
    """Load every artifact below ``directory`` and check it against the round's plan;
    ``attempt`` is this workflow run's attempt (see :func:`newest_attempts`)."""
    every_file, json_folders = find_artifact_files(directory)
    files, problems = newest_attempts(every_file, attempt)
    candidates: dict[tuple[str, int], list[tuple[str, SeedResult]]] = {}
    # Paths whose name claims a cell they do not deliver: why that cell may be missing.
    named_for: dict[tuple[str, int], list[str]] = {}
    for folder in json_folders:
        if (claimed := _claimed_cell(folder)) is not None:
            named_for.setdefault(claimed, []).append(f"{folder} is a folder")
    if len(files) < len(every_file):
        kept = set(files)
        for name in every_file:
            if name not in kept and (claimed := _claimed_cell(name)) is not None:
                named_for.setdefault(claimed, []).append(f"{name} is from a superseded attempt")
    planned_seeds = set(round_.seeds)
    # What the round file resolves each probe to, dumped once (artifacts record the same form).
    planned = {
        probe.id: (probe.trainer.name, probe.knobs.model_dump(mode="json"), probe.probe.options)
        for probe in round_.probes.values()
    }

    skipped_reports = 0
    with gc_paused():
        root = str(directory)
        for name in files:
            path = os.path.join(root, name)
            try:
                result = read_artifact(path)
            except ArtifactError as exc:
                if written_report(name, path):
                    skipped_reports += 1
                    continue
                problem = _unloadable(Path(path), name, exc)
                problems.append(problem)
                if problem.probe is not None and problem.seed is not None:
                    named_for.setdefault((problem.probe, problem.seed), []).append(
                        f"{name} is unusable"
                    )
                continue
            claimed = _claimed_cell(name)
            if claimed is not None and claimed != (result.probe_id, result.seed):
                held = f"{name} holds {result.probe_id} seed {result.seed}"
                named_for.setdefault(claimed, []).append(held)
            misfit = _misfit(name, result, round_, planned_seeds)
            if misfit is not None:
                problems.append(misfit)
                continue
            candidates.setdefault((result.probe_id, result.seed), []).append((name, result))

    results: dict[str, dict[int, SeedResult]] = {}
    kept_files: dict[tuple[str, int], str] = {}
    for key, found in candidates.items():
        kept: tuple[str, SeedResult] | None = found[0]
        if len(found) > 1:
            kept, duplicate = resolve_duplicates(key, found)
            problems.append(duplicate)
        if kept is not None:
            name, result = kept
            results.setdefault(key[0], {})[key[1]] = result
            kept_files[key] = name
            problems.extend(_run_problems(name, result))
            problems.extend(_config_problems(name, result, *planned[key[0]]))

    problems.extend(_missing_cells(round_, results, candidates, named_for))
    return Gathered(results, kept_files, problems, len(every_file) - skipped_reports)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading: it would rescan the growing heap of
    long-lived, cycle-free objects again and again (10,000 artifacts load 2.4x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # What was loaded is long-lived and cycle-free: freezing it spares the first
            # collection after this (half a second at 10,000 artifacts) a pass over all of it.
            gc.freeze()
            gc.enable()


def read_artifact(path: str | Path) -> SeedResult:
    """What :func:`..artifact.load` returns, on the fast path: pydantic parses and validates
    the JSON in one pass (about twice as fast as ``json.loads`` then validation). Whatever that
    refuses goes through ``load`` itself, so errors read the same as everywhere else."""
    try:
        with open(path, "rb") as handle:  # (not Path.read_bytes: pathlib's cost adds up)
            return SeedResult.model_validate_json(handle.read())
    except (OSError, ValidationError):
        pass
    try:
        return load(path)
    except (ValueError, RecursionError) as exc:
        # load() reports JSON and schema errors itself but lets these through: bytes that are
        # not UTF-8, and nesting deeper than the parser's recursion limit.
        raise ArtifactError(path, f"unreadable ({type(exc).__name__}: {exc})"[:300]) from None


def written_report(name: str, path: str | Path) -> bool:
    """Whether ``name`` (relative to the collected folder) is the round report collect writes
    beside the seed results it read, as a local round does: its own output, not an input, so
    it is skipped without a note. A report anywhere else is still noted."""
    return name == REPORT_JSON and _declared_schema(Path(path)) == REPORT_SCHEMA


def _unloadable(path: Path, name: str, exc: ArtifactError) -> Problem:
    if _declared_schema(path) == REPORT_SCHEMA:
        detail = "a round report, not a seed result; skipped"
        return Problem(kind="not-an-artifact", subject=name, detail=detail)
    # The (probe, seed) the file name claims, so a broken file points at its cell.
    claimed = _claimed_cell(name)
    cell = dict(probe=claimed[0], seed=claimed[1]) if claimed else {}
    return Problem(kind="invalid", subject=name, detail=exc.reason, **cell)


def _claimed_cell(name: str) -> tuple[str, int] | None:
    """The (probe, seed) an artifact's file name claims, if it is named like one."""
    match = ARTIFACT_NAME_RE.match(name.rsplit("/", 1)[-1])
    return (match["probe"], int(match["seed"])) if match else None


def _declared_schema(path: Path) -> object:
    # Only called for files that already failed to load, so the second read is rare.
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data.get("schema") if isinstance(data, dict) else None


def _misfit(
    name: str, result: SeedResult, round_: ResolvedRound, planned_seeds: set[int]
) -> Problem | None:
    """A valid artifact that does not belong to this round's plan."""
    if result.round_id != round_.id:
        kind, detail = "other-round", f"belongs to round {result.round_id!r}, not {round_.id!r}"
    elif result.probe_id not in round_.probes:
        kind, detail = "unknown-probe", f"probe {result.probe_id!r} is not in round {round_.id!r}"
    elif result.seed not in planned_seeds:
        kind, detail = "unknown-seed", f"seed {result.seed} is not in round {round_.id!r}"
    else:
        return None
    cell = dict(probe=result.probe_id, seed=result.seed)
    return Problem(kind=kind, subject=name, detail=f"{detail}; ignored", **cell)


def resolve_duplicates(
    key: tuple[str, int], found: list[tuple[str, SeedResult]]
) -> tuple[tuple[str, SeedResult] | None, Problem]:
    """Of several artifacts for one cell, identical copies keep the first; different ones keep
    none, because picking either would decide the comparison by file order."""
    names = ", ".join(name for name, _ in found)
    probe, seed = key
    # The JSON dump compares NaN losses as equal strings, unlike model equality.
    if len({result.model_dump_json() for _, result in found}) == 1:
        kept, kind = found[0], "duplicate-identical"
        detail = f"{len(found)} identical copies of {probe} seed {seed}; kept {found[0][0]}"
    else:
        kept, kind = None, "duplicate"
        detail = f"{len(found)} different results for {probe} seed {seed}; kept neither"
    return kept, Problem(kind=kind, subject=names, detail=detail, probe=probe, seed=seed)


def _run_problems(name: str, result: SeedResult) -> Iterable[Problem]:
    """Runs that ended badly are results, judged by the gates, but named here too."""
    cell = dict(probe=result.probe_id, seed=result.seed)
    if result.status == "error":
        detail = f"the run failed: {result.error_summary}"
        yield Problem(kind="run-error", subject=name, detail=detail, **cell)
    elif result.status == "nonfinite":
        step = next((r["step"] for r in result.rows if not math.isfinite(r["loss"])), None)
        detail = "non-finite loss" + (f" from step {step}" if step is not None else "")
        yield Problem(kind="run-nonfinite", subject=name, detail=detail, **cell)


def _config_problems(
    name: str, result: SeedResult, trainer: str, expected: dict, options: dict
) -> Iterable[Problem]:
    """A seed trained with other knobs, options or trainer than the round file now resolves:
    the report describes it as it ran, and says so here."""
    recorded = result.config
    if recorded == expected and result.trainer == trainer and result.options == options:
        return
    changed = [
        f"{key}={_value(recorded, key)} (round file: {_value(expected, key)})"
        for key in sorted(expected.keys() | recorded.keys())
        if recorded.get(key, _ABSENT) != expected.get(key, _ABSENT)
    ]
    if result.options != options:
        changed.append(f"options {json.dumps(result.options)} (round file: {json.dumps(options)})")
    if result.trainer != trainer:
        changed.insert(0, f"trainer {result.trainer} (round file: {trainer})")
    detail = "trained with " + ", ".join(changed)
    yield Problem(
        kind="config-mismatch", subject=name, detail=detail, probe=result.probe_id, seed=result.seed
    )


_ABSENT = object()


def _value(config: dict, key: str) -> str:
    return "(absent)" if key not in config else json.dumps(config[key])


def _missing_cells(
    round_: ResolvedRound,
    results: dict[str, dict[int, SeedResult]],
    candidates: dict[tuple[str, int], list[tuple[str, SeedResult]]],
    named_for: dict[tuple[str, int], list[str]],
) -> Iterable[Problem]:
    """Every planned cell without a kept artifact, with the reason when one is known."""
    for probe in round_.probes:
        for seed in round_.seeds:
            if seed in results.get(probe, {}):
                continue
            conflicting = candidates.get((probe, seed))
            claims = named_for.get((probe, seed))
            if conflicting:
                names = ", ".join(name for name, _ in conflicting)
                detail = f"no usable artifact: {len(conflicting)} different results ({names})"
            elif claims:
                detail = f"no valid artifact ({'; '.join(claims)})"
            else:
                detail = "no artifact found"
            subject = f"{probe} seed {seed}"
            yield Problem(kind="missing", subject=subject, detail=detail, probe=probe, seed=seed)
