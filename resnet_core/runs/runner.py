"""Background training jobs: one worker thread per run and a process-wide queue; each job passes the memory guard.

    runner = default_runner()               # one per process; caps concurrent runs
    job = runner.submit(config, owner=session_id)   # validates and applies the memory guard now
    snap = job.snapshot()                   # an immutable copy, safe to read from any thread
    job.stop()                              # the run ends within a second

The worker never touches the UI: it appends records to its job and replaces the job's JobState under a lock, and
writes the run store (`store.py`). `execute` is the same run, synchronously; the command line uses it.

Statuses (training.records.Status): queued → running → finished | stopped | diverged | failed. Exceptions are
caught in the worker and shown as `message` (with their cause) and `error` (the traceback).
Jobs carry an `owner` (the browser session that submitted them, which `jobs(owner=…)` and `get(…, owner)`
filter by); the queue is shared, and `queue_position` tells each queued job where it stands and `wait_sec` how long
it will wait (runs/forecast.py). A job is interactive (the default: a run a user watches) or batch (one of an
experiment's runs); interactive jobs go first, and a batch job in their way is paused and later resumed
(runs/scheduler.py). `run_state` is
the one place where a live job's status and a stored run's status meet. The process-wide runner is held by
`background.process_wide`.
"""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..data.image_data import ImageData
from ..formatting import describe_error, format_seconds
from ..training.config import TrainConfig, cores
from ..training.engine import Diverged, FitResult
from ..training.records import FinalRecord, R, Record, Status, TestRecord, TrainRecord, final_of, of_kind
from ..training.settings import measures_after_step_one
from ..validation import check_choice
from .background import process_wide
from .contract import RunState
from .execute import execute
from .forecast import measured_rate, scaled
from .memory import guard_memory
from .resume import resume_paused
from .scheduler import PRIORITIES, Priority, blocks, queue_key, to_pause, wait_before
from .store import CONFIG, read_run, write_status
from .transfer import check_init_from

MAX_RUNS_ENV = "RESNET_EXPLORER_MAX_RUNS"
KEEP_ENDED = 8  # ended jobs kept in memory per owner; their runs stay in the store
CANCELLED = "cancelled before it started"  # the start of a queued job's message once it is stopped
MEASURING = ("timing fp32 against bf16 on this model, about 2 s, longer where this CPU emulates bf16; then remembered "
             "for this machine")


@dataclass(frozen=True)
class JobState:
    """What a job's worker has reported so far; the job holds one and replaces it whole under its lock."""

    submitted: float  # epoch seconds
    status: Status = Status.QUEUED
    message: str = "waiting for a free slot"
    error: str = ""
    run_id: str | None = None
    run_dir: str | None = None
    step: int = 0
    total_steps: int | None = None
    eta_sec: float | None = None
    images_per_sec: float | None = None
    started: float | None = None
    ended: float | None = None


@dataclass(frozen=True)
class JobSnapshot:
    job_id: str
    owner: str
    status: Status  # queued | running | finished | stopped | diverged | failed
    message: str  # one line: progress note, stop reason, or the error with its cause
    error: str  # traceback of a failure ("" otherwise)
    config: TrainConfig
    run_id: str | None
    run_dir: str | None
    queue_position: int | None  # 1 = next to start; None unless queued
    step: int
    total_steps: int | None
    eta_sec: float | None
    images_per_sec: float | None
    records: tuple[Record, ...]  # every record so far (see training/records.py)
    submitted: float
    started: float | None
    ended: float | None
    priority: Priority = Priority.INTERACTIVE
    wait_sec: float | None = None  # queued: the estimated wait before it starts (None until a run has a pace)

    @property
    def done(self) -> bool:
        return not self.status.live

    @property
    def state(self) -> RunState:
        return RunState(self.status, self.message, self.queue_position, self.wait_sec)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def of_kind(self, kind: type[R]) -> list[R]:
        return of_kind(self.records, kind)

    @property
    def final(self) -> FinalRecord | None:
        return final_of(self.records)


class Job:
    def __init__(self, config: TrainConfig, owner: str, run_dir: str | None, data: ImageData | None,
                 memory_budget: int | None = None, priority: Priority = Priority.INTERACTIVE) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.owner, self.config, self.data, self.memory_budget = owner, config, data, memory_budget
        self.priority, self.seq = priority, 0  # seq: its place in submission order, set by the runner
        self._run_dir_request = run_dir
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pausing = threading.Event()  # set with _stop: the stop is a pause (runs/scheduler.py)
        self._paused = False  # it paused, and goes on from its checkpoint when it runs again
        self._measures = False  # its step 1 is followed by timing fp32 against bf16 (settings.measures_after_step_one)
        self._done = threading.Event()
        self._records: list[Record] = []
        self._state = JobState(submitted=time.time())
        self._queue_position: Callable[[], int | None] = lambda: None
        self._wait: Callable[[], float | None] = lambda: None
        self._on_stop: Callable[[], None] = lambda: None
        self.result: FitResult | None = None  # the trained model and last evaluation, once ended

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            s, records = self._state, tuple(self._records)
        queued = s.status == Status.QUEUED
        return JobSnapshot(job_id=self.id, owner=self.owner, status=s.status, message=s.message, error=s.error,
                           config=self.config, run_id=s.run_id, run_dir=s.run_dir,
                           queue_position=self._queue_position() if queued else None,
                           step=s.step, total_steps=s.total_steps, eta_sec=s.eta_sec,
                           images_per_sec=s.images_per_sec, records=records, submitted=s.submitted,
                           started=s.started, ended=s.ended, priority=self.priority,
                           wait_sec=self._wait() if queued else None)

    def records(self) -> tuple[Record, ...]:
        with self._lock:
            return tuple(self._records)

    def stop(self) -> None:
        """Ask the run to end; it does within a second (a queued job is cancelled at once)."""
        self._pausing.clear()
        self._stop.set()
        self._on_stop()

    def pause(self) -> None:
        """Ask a running job to stop at its next block and go back to the queue, to resume from its checkpoint."""
        self._pausing.set()
        self._stop.set()
        self._update(message="pausing for an interactive run")

    @property
    def pausing(self) -> bool:
        return self._pausing.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended; False if `timeout` passed first."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _on_record(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)
            if isinstance(record, TrainRecord):
                self._state = replace(self._state, step=record.step, total_steps=record.total_steps,
                                      eta_sec=record.eta_sec, images_per_sec=record.images_per_sec,
                                      message=MEASURING if record.step == 1 and self._measures else "training")
            elif isinstance(record, TestRecord):
                self._state = replace(self._state, step=record.step,
                                      message=f"epoch {record.epoch:g}: test accuracy {record.test_acc:.1%}")

    def _run(self) -> None:
        paused_in, self._paused = self._state.run_dir if self._paused else None, False
        self._update(status=Status.RUNNING, started=self._state.started or time.time(),
                     message="resuming" if paused_in else "loading data")
        try:
            resume = resume_paused(paused_in) if paused_in else None
            self._measures = resume is None and measures_after_step_one(self.config)
            if resume is not None:
                with self._lock:
                    self._records = list(resume.records)
            result = execute(self.config, run_dir=self._run_dir_request, data=self.data, on_record=self._on_record,
                             stop=self._stop, on_start=lambda w: self._update(run_id=w.run_id, run_dir=str(w.path)),
                             memory_budget=self.memory_budget, resume=resume, pausing=self._pausing)
            self._ended(result)
        except Diverged as exc:
            self._end(status=Status.DIVERGED, message=str(exc))
        except BaseException as exc:  # surfaced to the user, never lost in a thread
            self._end(status=Status.FAILED, message=describe_error(exc), error=traceback.format_exc())

    def _ended(self, result: FitResult) -> None:
        final = result.final
        if result.status == Status.STOPPED and self._pausing.is_set():
            with self._lock:  # not ended: a resumed run goes on from its checkpoint's records
                self._records = [r for r in self._records if not isinstance(r, FinalRecord)]
            self._pausing.clear()
            self._stop.clear()  # here, before it is queued again: a Stop from now on is the user's
            self._paused = True
            self._update(status=Status.QUEUED, eta_sec=None, message=f"paused at step {final.steps} for an "
                         "interactive run; goes on from there when it ends")
            return
        self.result = result
        note = (f"stopped by the user at step {final.steps}" if result.status == Status.STOPPED
                else f"finished {final.steps} steps in {final.seconds:.1f} s")
        acc = f"; test accuracy {final.test_acc:.1%}" if final.test_acc is not None else ""
        self._end(status=result.status, eta_sec=0.0, message=note + acc)

    def _end(self, **changes: Any) -> None:
        self._update(ended=time.time(), **changes)
        self._done.set()

    def _cancel(self) -> None:
        """Off the queue before it (or, paused, before it went on) ran; a paused run's folder says stopped."""
        s = self._state
        if not self._paused:
            waited = format_seconds(time.time() - s.submitted)
            self._end(status=Status.STOPPED, message=f"{CANCELLED}, after {waited} in the queue")
            return
        write_status(s.run_dir, Status.STOPPED, f"stopped by the user at step {s.step}, while paused")
        self._end(status=Status.STOPPED, message=f"stopped by the user at step {s.step}, while paused")


class JobRunner:
    """Starts queued jobs, interactive ones first, while fewer than `max_concurrent` are running; pauses a batch job
    in an interactive one's way (runs/scheduler.py)."""

    def __init__(self, max_concurrent: int | None = None, memory_budget: int | None = None,
                 threads_per_run: int | None = None) -> None:
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self.memory_budget = memory_budget  # bytes; None: default_memory_budget() at submit time
        # torch's thread count (all cores, or OMP_NUM_THREADS) shared out between the concurrent runs
        self.threads_per_run = threads_per_run or max(1, torch.get_num_threads() // self.max_concurrent)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []  # in scheduler.queue_key order
        self._running: list[Job] = []  # whose worker thread is alive, pausing ones included
        self._seq = itertools.count()

    def submit(self, config: TrainConfig, owner: str = "", run_dir: str | None = None,
               data: ImageData | None = None, priority: Priority = Priority.INTERACTIVE) -> Job:
        """Validate, apply the memory guard (raises MemoryRefused) and queue a run; returns its job.

        Jobs submitted with the same data settings and seed train on the same batches in the same order.
        """
        check_choice("priority", priority, PRIORITIES)
        config.validate()
        if config.init_from is not None:
            check_init_from(config)  # a page shows a missing or unfitting source at once, not as a failed run
        guard_memory(config, self.memory_budget, data)
        job = Job(config, owner, run_dir, data, self.memory_budget, Priority(priority))
        job._queue_position = lambda: self._position(job)
        job._wait = lambda: self.wait_sec(job)
        job._on_stop = lambda: self._cancel_if_queued(job)
        with self._lock:
            self._forget_ended(owner)
            self._jobs[job.id] = job
            job.seq = next(self._seq)
            self._enqueue(job)
        self._dispatch()
        return job

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Jobs of `owner` (all jobs if None), oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and (owner is None or job.owner == owner) else None

    def load(self) -> tuple[int, int]:
        """(running, queued) across all owners: the shared queue everyone sees (a pausing job counts as queued)."""
        with self._lock:
            pausing = sum(j.pausing for j in self._running)
            return len(self._running) - pausing, len(self._queue) + pausing

    def wait_sec(self, job: Job) -> float | None:
        """A queued job's estimated wait before it starts: the running jobs in its way, then every owner's jobs
        ahead of it in the queue, at the pace measured on the runs here (forecast.py); None while none has a pace."""
        with self._lock:
            running, queue, every = list(self._running), list(self._queue), list(self._jobs.values())
        rate = measured_pace(running) or measured_pace(sorted(every, key=lambda j: j._state.ended or 0.0, reverse=True))
        if job not in queue or rate is None:
            return None
        in_way = [j for j in running if not j.pausing and blocks(j.priority, job.priority)]
        pausing = [j for j in running if j.pausing and job.priority == Priority.BATCH]  # they come back first
        ahead = [time_left(j, rate) for j in pausing + queue[:queue.index(job)]]
        return wait_before([time_left(j, rate) for j in in_way], ahead, self.max_concurrent)

    def _forget_ended(self, owner: str) -> None:
        """Keep an owner's newest KEEP_ENDED jobs that have ended (each holds its trained model)."""
        ended = [j for j in self._jobs.values() if j.owner == owner and j.done]
        for job in ended[:max(0, len(ended) - KEEP_ENDED)]:
            del self._jobs[job.id]

    def _position(self, job: Job) -> int | None:
        with self._lock:
            return self._queue.index(job) + 1 if job in self._queue else None

    def _enqueue(self, job: Job) -> None:
        bisect.insort(self._queue, job, key=lambda j: queue_key(j.priority, j.seq))

    def _cancel_if_queued(self, job: Job) -> None:
        """A running job sees its stop event itself; a queued one is taken off the queue here."""
        with self._lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
        if queued:
            job._cancel()

    def _dispatch(self) -> None:
        with self._lock:
            starting = []
            while self._queue:
                active = [j for j in self._running if not j.pausing]
                if len(active) >= self.max_concurrent:
                    victim = to_pause([(j.priority, j.seq) for j in active], self._queue[0].priority)
                    if victim is None:
                        break
                    active[victim].pause()  # it winds down while the interactive run starts
                    continue
                job = self._queue.pop(0)
                job._update(status=Status.RUNNING, message="starting")  # off the queue: never "queued" without a place
                self._running.append(job)
                starting.append(job)
        for job in starting:
            if job.config.threads is None:
                job.config = job.config.replace(threads=self.threads_per_run)
            threading.Thread(target=self._work, args=(job,), daemon=True, name=f"job-{job.id}").start()

    def _work(self, job: Job) -> None:
        try:
            job._run()
        finally:
            with self._lock:
                self._running.remove(job)
                if not job.done:  # paused: back to the front of the batch jobs
                    self._enqueue(job)
            self._dispatch()


def measured_pace(jobs: list[Job]) -> float | None:
    """The first of `jobs` with a measured pace: its seconds per unit of work (forecast.py)."""
    for job in jobs:
        rate = measured_rate(job.config, job.records())
        if rate is not None:
            return rate
    return None


def time_left(job: Job, rate: float) -> float:
    """A job's time left: its own measured ETA while it runs, its work left at its own pace once it has one (a
    paused job), else its work at `rate`."""
    s = job._state
    if s.status == Status.RUNNING and s.eta_sec is not None:
        return s.eta_sec
    return scaled(job.config, measured_rate(job.config, job.records()) or rate, s.step).seconds


def default_runner() -> JobRunner:
    """The process-wide runner (shared by every browser session of a streamlit server)."""
    return process_wide("runner", JobRunner)


def run_state(job: Job | None, run_dir: str | Path | None) -> RunState | None:
    """Where a run stands: its job's live state when this process runs it, else its stored folder's (a run
    written by another process, or before a restart); None when neither exists yet."""
    if job is not None:
        return job.snapshot().state
    if run_dir is not None and (Path(run_dir) / CONFIG).is_file():
        try:
            return read_run(run_dir).state
        except ValueError as exc:
            return RunState(Status.FAILED, str(exc))
    return None


def default_max_concurrent() -> int:
    """$RESNET_EXPLORER_MAX_RUNS, else one run per 4 cores (1 on a 2-core machine)."""
    env = os.environ.get(MAX_RUNS_ENV)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"{MAX_RUNS_ENV} must be a whole number >= 1; got {env!r}") from None
    return max(1, cores() // 4)
