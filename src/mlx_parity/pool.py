"""A pool of long-lived worker processes that train seeds.

Each worker imports MLX and loads each fixture's model once (``ModelSource``), then takes
(probe, seed) tasks from a queue until told to stop; every finished seed's artifact is written
by the worker itself, atomically, so nothing finished is lost when the round is interrupted or
a worker dies. Progress and outcomes flow back on one event queue.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifact import DeviceChoice
from .fixture import Fixture
from .matrix import ResolvedProbe


@dataclass(frozen=True)
class Task:
    round_id: str
    probe: ResolvedProbe
    fixture: Fixture
    seed: int
    out_dir: str
    device: DeviceChoice = "auto"
    # A baseline's first seeds also measure the noise floor (cell.measure_noise).
    calibrate: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.probe.id, self.seed)


@dataclass(frozen=True)
class Event:
    """``started``/``step``/``finished`` from a worker; ``lost`` when a worker died mid-task."""

    kind: str
    worker: int
    probe_id: str
    seed: int
    step: int = 0
    status: str = ""
    passed: bool = False
    detail: str = ""


def _worker(index: int, tasks: mp.Queue, events: mp.Queue) -> None:
    # Imported here so the parent never pays for MLX unless it trains itself.
    from . import artifact
    from .cell import ModelSource, check_device_for, run_seed

    sources: dict[str, ModelSource] = {}
    checks = {}
    while True:
        task: Task | None = tasks.get()
        if task is None:
            return

        def emit(kind: str, task: Task = task, **fields: Any) -> None:
            events.put(Event(kind, index, task.probe.id, task.seed, **fields))

        emit("started")
        path = task.fixture.model_path()
        source = sources.setdefault(path, ModelSource(path))
        # One device self-check per model and setting, before its first seed; a failed check
        # (device = "gpu" without a working GPU) is every such seed's recorded error.
        key = (path, task.device)
        if key not in checks:
            try:
                checks[key] = check_device_for(source, task.fixture, task.probe, task.device)
            except Exception as exc:
                checks[key] = exc
        result = run_seed(
            task.round_id,
            task.probe,
            task.fixture,
            source,
            task.seed,
            lambda record: emit("step", step=record.step),
            checks[key],
            task.calibrate,
        )
        artifact.save(result, Path(task.out_dir))
        emit(
            "finished",
            status=result.status,
            passed=result.passed,
            detail=result.error_summary if result.error else "",
        )


def run_tasks(
    tasks: Iterable[Task], workers: int, on_event: Callable[[Event], None]
) -> list[tuple[str, int]]:
    """Run every task on ``workers`` processes; return the keys of tasks lost to dead workers.
    Ctrl-C stops the workers and re-raises; finished seeds are on disk."""
    ctx = mp.get_context("spawn")
    task_queue: mp.Queue = ctx.Queue()
    events: mp.Queue = ctx.Queue()
    pending = list(tasks)
    workers = min(max(workers, 1), len(pending))
    for item in pending + [None] * workers:  # one stop sentinel per worker, after every task
        task_queue.put(item)
    procs = {
        i: ctx.Process(target=_worker, args=(i, task_queue, events), daemon=True)
        for i in range(workers)
    }
    for proc in procs.values():
        proc.start()
    in_flight: dict[int, tuple[str, int]] = {}
    remaining = {t.key for t in pending}
    lost: list[tuple[str, int]] = []
    try:
        while remaining:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                for index, proc in procs.items():
                    if not proc.is_alive() and index in in_flight:
                        key = in_flight.pop(index)
                        remaining.discard(key)
                        lost.append(key)
                        detail = f"worker exited with {proc.exitcode}"
                        on_event(Event("lost", index, *key, detail=detail))
                if not any(p.is_alive() for p in procs.values()):
                    # Every worker is gone; whatever was queued will not run.
                    for key in sorted(remaining):
                        on_event(Event("lost", -1, *key, detail="no worker left"))
                    lost += sorted(remaining)
                    remaining.clear()
                continue
            if event.kind == "started":
                in_flight[event.worker] = (event.probe_id, event.seed)
            elif event.kind == "finished":
                in_flight.pop(event.worker, None)
                remaining.discard((event.probe_id, event.seed))
            on_event(event)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    for proc in procs.values():
        proc.join(timeout=10)
    _stop(procs)
    return lost


def _stop(procs) -> None:
    for proc in procs.values():
        if proc.is_alive():
            proc.terminate()
    for proc in procs.values():
        proc.join(timeout=5)
