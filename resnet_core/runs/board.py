"""Every run a page names, read from one place: this process's jobs (runner.py) and the run store (store.py).

    board = run_board(default_runner())     # jobs of every session, then stored runs, at this moment
    entry = board.runs[run_id]              # its status (a job's live state wins over its folder's), step, score
    entry.status_text                       # "queued · position 2 · waiting 12 s", "finished · test acc 91.2%"
    board.signature                         # changes when a run appears or changes status: redraw what names it

A job's state is `runner.run_state(job, run_dir)`, so a run trained here reads the same on every page, its folder's
status.json only where no job of this process follows it (another process's run, or one from before a restart). A
queued job has no folder yet: it is listed by its job, with its queue position and its wait so far (and no longer
once it is cancelled: its session shows that). Widgets keep run ids as their values and show `choice_label` (facts
that never change); the status is drawn apart from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..formatting import format_seconds
from ..training.records import Status, TrainRecord
from .contract import RunState
from .runner import Job, JobRunner, run_state
from .store import RunInfo, SkippedRun, read_metrics, runs_root, scan_runs


@dataclass(frozen=True)
class RunEntry:
    """One run as the pages show it."""

    key: str  # the run id, or "job <job id>" while the job has no run folder
    run_id: str | None
    job_id: str | None  # the job of this process that trains it, if any
    model: str
    dataset: str
    state: RunState
    step: int = 0
    total_steps: int | None = None
    test_acc: float | None = None
    waited: float | None = None  # seconds in this process's queue: so far while queued, else before it started
    processes: int = 1
    path: Path | None = None
    skip: bool = True  # residual (True) or the plain twin (False)

    @property
    def live(self) -> bool:
        return self.state.live

    @property
    def name(self) -> str:
        """The run id, or what a job without a folder yet trains: "resnet20 on synthetic (job 1a2b3c4d5e6f)"."""
        return self.run_id or f"{self.model} on {self.dataset} (job {self.job_id})"

    @property
    def status_text(self) -> str:
        """"queued · position 2 · waiting 12 s", "running · step 3 of 10", "finished · test acc 91.2%",
        "interrupted"."""
        status = self.state.status
        if status == Status.QUEUED:
            position = f" · position {self.state.queue_position}" if self.state.queue_position else ""
            wait = f" · waiting {format_seconds(self.waited)}" if self.waited is not None else ""
            return f"queued{position}{wait}"
        if status == Status.RUNNING:
            return f"running · step {self.step} of {self.total_steps or '…'}"
        score = f" · test acc {self.test_acc:.1%}" if self.test_acc is not None else ""
        return f"{status.value}{score}"

    @property
    def choice_label(self) -> str:
        """A selector's label: facts that never change while the run exists (no status, no score)."""
        where = f" · {self.processes} processes" if self.processes > 1 else ""
        return f"{self.name} · {self.dataset}{where}"


@dataclass(frozen=True)
class RunBoard:
    """The runs at one moment: jobs without a folder yet first (oldest first), then runs newest first."""

    entries: tuple[RunEntry, ...]
    skipped: tuple[SkippedRun, ...] = ()

    @property
    def runs(self) -> dict[str, RunEntry]:
        """The entries with a run folder, by run id."""
        return {e.run_id: e for e in self.entries if e.run_id is not None}

    @property
    def live(self) -> list[RunEntry]:
        """The running entries, then the queued ones by their place in the queue."""
        return sorted((e for e in self.entries if e.live),
                      key=lambda e: (e.state.status == Status.QUEUED, e.state.queue_position or 0))

    @property
    def signature(self) -> tuple[tuple[str, str], ...]:
        """(key, status) of every entry: equal boards list the same runs in the same states."""
        return tuple((e.key, e.state.status.value) for e in self.entries)


def run_board(runner: JobRunner | None, root: str | Path | None = None) -> RunBoard:
    """Every job of `runner` that has no run folder yet, and every stored run under `root` (runs_root()), each
    with the state of the job that trains it when this process runs it (`run_state`), else its folder's."""
    stored, skipped = scan_runs(root)
    jobs = runner.jobs() if runner is not None else []
    by_run = {}
    unfiled = []
    for job in jobs:
        snap = job.snapshot()
        if snap.run_id is not None:
            by_run[snap.run_id] = job
        elif not job.done:
            unfiled.append(job_entry(job))
    entries = [stored_entry(info, by_run.get(info.run_id)) for info in stored]
    return RunBoard(tuple(unfiled + entries), tuple(skipped))


def job_entry(job: Job) -> RunEntry:
    """A job of this process that has no run folder yet: queued, or starting."""
    snap = job.snapshot()
    return RunEntry(key=f"job {job.id}", run_id=None, job_id=job.id, model=job.config.model,
                    dataset=job.config.dataset, state=snap.state, waited=waited(snap.submitted, snap.started,
                                                                                snap.ended))


def stored_entry(info: RunInfo, job: Job | None) -> RunEntry:
    """A stored run; its status, step and score are its job's when `job` (of this process) trains it."""
    state = run_state(job, info.path) or info.state
    if job is not None:
        snap = job.snapshot()
        final = snap.final
        step, total, wait = snap.step, snap.total_steps, waited(snap.submitted, snap.started, snap.ended)
    else:
        final = info.final
        (step, total), wait = stored_progress(info), None
    return RunEntry(key=info.run_id, run_id=info.run_id, job_id=job.id if job else None, model=info.config.train.model,
                    dataset=info.config.train.dataset, state=state, step=step, total_steps=total,
                    test_acc=final.test_acc if final else None, waited=wait,
                    processes=info.config.distributed.world_size, path=info.path, skip=info.skip)


def stored_progress(info: RunInfo) -> tuple[int, int | None]:
    """(step, total steps) of a run no job here follows: from its final record, else (live runs only: the
    metrics of an ended run are not read for a listing) from its last train record."""
    if info.final is not None:
        return info.final.steps, info.final.steps
    steps = read_metrics(info.path, TrainRecord) if info.status.live else []
    return (steps[-1].step, steps[-1].total_steps) if steps else (0, None)


def waited(submitted: float, started: float | None, ended: float | None) -> float:
    """Seconds a job spent in the queue: until it started, or it ended (cancelled), or now."""
    return (started or ended or time.time()) - submitted


def board_stamp(runner: JobRunner | None, root: str | Path | None = None) -> tuple[object, ...]:
    """Cheap to take, unlike a board: changes when a job of `runner` changes status or a run folder is added or
    removed under `root` (runs_root()); a page with nothing live looks at this between boards."""
    folder = Path(root) if root else runs_root()
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        mtime = None
    jobs = tuple((job.id, job.snapshot().status.value) for job in runner.jobs()) if runner else ()
    return jobs, mtime


def run_entry(runner: JobRunner | None, info: RunInfo) -> RunEntry:
    """One stored run as the board lists it (the job of `runner` that trains it, if any, gives its state)."""
    job = next((j for j in runner.jobs() if j.snapshot().run_id == info.run_id), None) if runner else None
    return stored_entry(info, job)
