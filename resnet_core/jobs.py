"""Background training jobs: one worker thread per run, a process-wide queue, and the memory guard.

    runner = default_runner()               # one per process; caps concurrent runs
    job = runner.submit(config, owner=session_id)   # validates and applies the memory guard now
    snap = job.snapshot()                   # an immutable copy, safe to read from any thread
    job.stop()                              # the run ends within a second

The worker never touches the UI: it appends records to its job under a lock and to the run store
(`runstore.py`). `execute` is the same run, synchronously; the command line uses it.

Statuses (records.Status): queued → running → finished | stopped | diverged | failed. Exceptions are
caught in the worker and shown as `message` (with their cause) and `error` (the traceback).
Jobs carry an `owner` (the browser session that submitted them, which `jobs(owner=…)` and `get(…, owner)`
filter by); the queue is shared, and `queue_position` tells each queued job where it stands. `run_state` is
the one place where a live job's status and a stored run's status meet.

`BackgroundRows` computes rows (one per item) in a daemon thread for pages that measure in the
background, and `process_wide` holds the objects one server process shares (the runner, such tasks).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from .checkpoint import save_checkpoint
from .config import TrainConfig, resolve_device
from .data import NATIVE_SIZE, ImageData, held_bytes, train_size
from .distributed import SINGLE, Replicas
from .format import format_bytes
from .presets import resolve_spec
from .records import (
    DataFacts,
    DistributedFacts,
    FinalRecord,
    R,
    Record,
    RunConfig,
    RunState,
    Status,
    TestRecord,
    TrainRecord,
    final_of,
    of_kind,
)
from .resume import Resume, continue_metrics
from .runstore import CONFIG, RunWriter, create_run, read_run
from .settings import resolve_settings
from .summary import BYTES_PER_FLOAT, natural_input_size, summarize
from .train import Diverged, FitResult, fit, initial_model, load_data, resumed_model
from .transfer import check_init_from

MAX_RUNS_ENV = "RESNET_EXPLORER_MAX_RUNS"
MEMORY_BUDGET_ENV = "RESNET_EXPLORER_MEMORY_BUDGET"  # e.g. 8G; unset: MEMORY_FRACTION of the available RAM
MEMORY_FRACTION = 0.5  # the default budget is this share of the RAM available when a run is submitted
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}  # binary, as format_bytes prints
KEEP_ENDED = 8  # ended jobs kept in memory per owner; their runs stay in the store


class MemoryRefused(ValueError):
    """The estimated training memory exceeds the budget; the message holds both figures."""


@dataclass(frozen=True)
class MemoryCheck:
    needed_bytes: int  # training step (activations, input, weights, grads, optimizer state) + data
    training_bytes: int  # from summarize(...).training_memory_bytes, plus Adam's second moment
    data_bytes: int  # the uint8 images held in memory
    budget_bytes: int
    available_bytes: int
    budget_source: str  # where the budget comes from, for messages

    @property
    def ok(self) -> bool:
        return self.needed_bytes <= self.budget_bytes


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
    records: tuple[Record, ...]  # every record so far (see records.py)
    submitted: float
    started: float | None
    ended: float | None

    @property
    def done(self) -> bool:
        return not self.status.live

    @property
    def state(self) -> RunState:
        return RunState(self.status, self.message, self.queue_position)

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
                 memory_budget: int | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.owner, self.config, self.data, self.memory_budget = owner, config, data, memory_budget
        self._run_dir_request = run_dir
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._records: list[Record] = []
        self._state: dict[str, Any] = dict(status=Status.QUEUED, message="waiting for a free slot", error="",
                                           run_id=None, run_dir=None, step=0, total_steps=None, eta_sec=None,
                                           images_per_sec=None, submitted=time.time(), started=None, ended=None)
        self._queue_position: Callable[[], int | None] = lambda: None
        self._on_stop: Callable[[], None] = lambda: None
        self.result: FitResult | None = None  # the trained model and last evaluation, once ended

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            state = dict(self._state)
            records = tuple(self._records)
        position = self._queue_position() if state["status"] == "queued" else None
        return JobSnapshot(job_id=self.id, owner=self.owner, config=self.config, records=records,
                           queue_position=position, **state)

    def stop(self) -> None:
        """Ask the run to end; it does within a second (a queued job is cancelled at once)."""
        self._stop.set()
        self._on_stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended; False if `timeout` passed first."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._state.update(changes)

    def _on_record(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)
            if isinstance(record, TrainRecord):
                self._state.update(step=record.step, total_steps=record.total_steps, eta_sec=record.eta_sec,
                                   images_per_sec=record.images_per_sec, message="training")
            elif isinstance(record, TestRecord):
                self._state.update(step=record.step, message=f"epoch {record.epoch:g}: "
                                                             f"test accuracy {record.test_acc:.1%}")

    def _run(self) -> None:
        self._update(status=Status.RUNNING, started=time.time(), message="loading data")
        try:
            result = execute(self.config, run_dir=self._run_dir_request, data=self.data, on_record=self._on_record,
                             stop=self._stop, on_start=lambda w: self._update(run_id=w.run_id, run_dir=str(w.path)),
                             memory_budget=self.memory_budget)
            self.result = result
            final = result.final
            note = (f"stopped by the user at step {final.steps}" if result.status == Status.STOPPED
                    else f"finished {final.steps} steps in {final.seconds:.1f} s")
            acc = f"; test accuracy {final.test_acc:.1%}" if final.test_acc is not None else ""
            self._update(status=result.status, eta_sec=0.0, message=note + acc)
        except Diverged as exc:
            self._update(status=Status.DIVERGED, message=str(exc))
        except BaseException as exc:  # surfaced to the user, never lost in a thread
            self._update(status=Status.FAILED, message=describe_error(exc), error=traceback.format_exc())
        finally:
            self._update(ended=time.time())
            self._done.set()

    def _cancel(self) -> None:
        self._update(status=Status.STOPPED, message="stopped before it started", ended=time.time())
        self._done.set()


class JobRunner:
    """Starts queued jobs in order while fewer than `max_concurrent` are running."""

    def __init__(self, max_concurrent: int | None = None, memory_budget: int | None = None,
                 threads_per_run: int | None = None) -> None:
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self.memory_budget = memory_budget  # bytes; None: default_memory_budget() at submit time
        # torch's thread count (all cores, or OMP_NUM_THREADS) shared out between the concurrent runs
        self.threads_per_run = threads_per_run or max(1, torch.get_num_threads() // self.max_concurrent)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._running: list[Job] = []

    def submit(self, config: TrainConfig, owner: str = "", run_dir: str | None = None,
               data: ImageData | None = None) -> Job:
        """Validate, apply the memory guard (raises MemoryRefused) and queue a run; returns its job.

        Jobs submitted with the same data settings and seed train on the same batches in the same order.
        """
        config.validate()
        if config.init_from is not None:
            check_init_from(config)  # a page shows a missing or unfitting source at once, not as a failed run
        guard_memory(config, self.memory_budget, data)
        job = Job(config, owner, run_dir, data, self.memory_budget)
        job._queue_position = lambda: self._position(job)
        job._on_stop = lambda: self._cancel_if_queued(job)
        with self._lock:
            self._forget_ended(owner)
            self._jobs[job.id] = job
            self._queue.append(job)
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
        """(running, queued) across all owners: the shared queue everyone sees."""
        with self._lock:
            return len(self._running), len(self._queue)

    def _forget_ended(self, owner: str) -> None:
        """Keep an owner's newest KEEP_ENDED jobs that have ended (each holds its trained model)."""
        ended = [j for j in self._jobs.values() if j.owner == owner and j.done]
        for job in ended[:max(0, len(ended) - KEEP_ENDED)]:
            del self._jobs[job.id]

    def _position(self, job: Job) -> int | None:
        with self._lock:
            return self._queue.index(job) + 1 if job in self._queue else None

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
            self._running = [j for j in self._running if not j.done]
            starting = []
            while self._queue and len(self._running) < self.max_concurrent:
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
            self._dispatch()


# Process-wide objects live in a file-less module so they outlive re-imports of this one (streamlit's
# reloader re-imports every project module when any source file changes); running jobs are never orphaned.
_REGISTRY = sys.modules.setdefault("_resnet_explorer_jobs", types.ModuleType("_resnet_explorer_jobs"))
_REGISTRY.__dict__.setdefault("lock", threading.RLock())
_REGISTRY.__dict__.setdefault("objects", {})
T = TypeVar("T")


def process_wide(name: str, factory: Callable[[], T]) -> T:
    """The one object of this process named `name`, made by `factory()` on first use (every browser session
    of a streamlit server shares it). A factory that raises leaves nothing behind, so a later call retries."""
    with _REGISTRY.lock:
        if name not in _REGISTRY.objects:
            _REGISTRY.objects[name] = factory()
        return _REGISTRY.objects[name]


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
    return max(1, (os.cpu_count() or 1) // 4)


def execute(config: TrainConfig, *, run_dir: str | Path | None = None, data: ImageData | None = None,
            on_record: Callable[[Record], None] | None = None, stop: threading.Event | None = None,
            on_start: Callable[[RunWriter], None] | None = None, memory_budget: int | None = None,
            replicas: Replicas = SINGLE, resume: Resume | None = None) -> FitResult:
    """One run into the store, in this thread: load data, write the run folder, train, save weights and status.

    The run folder is runs_root()/<new id> unless `run_dir` is given; `resume` goes on in its stored run's folder
    from its checkpoint, with its stored settings. Raises MemoryRefused (against `memory_budget`, default
    `default_memory_budget`) before anything is written; later errors propagate after being written to the
    folder's status. In a torchrun job (`replicas`) every rank trains and rank 0 alone writes.
    """
    config.validate()
    guard_memory(config, memory_budget, data)
    data = data if data is not None else load_data(config)
    if resume:
        model, transfer = resumed_model(config, data, resolve_device(config.device)), resume.info.config.transfer
    else:
        model, transfer = initial_model(config, data, resolve_device(config.device))  # a bad source: nothing written
    settings = resume.info.config.settings if resume else resolve_settings(config)
    state = resume.state if resume else None
    if not replicas.writes:  # every rank starts from the same weights and freezes the same parameters
        try:
            return fit(config, data=data, model=model, stop=stop, settings=settings, replicas=replicas,
                       resume=state)
        except RuntimeError as exc:
            lost = replicas.peer_lost(exc)
            if lost is None:
                raise
            raise lost from None
    batch = min(config.batch_size, len(data.train_labels))
    facts = DistributedFacts(replicas.world_size, replicas.backend, batch // replicas.world_size, replicas.sync_bn)
    run_config = RunConfig(config, model.spec, DataFacts.from_dict(data.describe()), settings, transfer=transfer,
                           distributed=facts)
    if resume:
        continue_metrics(resume.path, resume.records)
        stored = resume.info.config
        writer = RunWriter(resume.path, replace(run_config, run_id=stored.run_id, created=stored.created),
                           existing=True)
    else:
        writer = create_run(run_config, run_dir)
    try:
        writer.set_status(Status.RUNNING)
        if on_start is not None:
            on_start(writer)

        def record(r: Record) -> None:
            writer.append(r)
            if on_record is not None:
                on_record(r)

        result = fit(config, data=data, model=model, on_record=record, stop=stop, settings=settings,
                     replicas=replicas, resume=state,
                     checkpoint=lambda train_state: save_checkpoint(writer.path, train_state))
        writer.save_weights(result.model)
        stopped = result.status == Status.STOPPED
        writer.set_status(result.status, "stopped by the user" if stopped else "", result.final)
        return result
    except Diverged as exc:
        writer.set_status(Status.DIVERGED, str(exc))
        raise
    except BaseException as exc:
        lost = replicas.peer_lost(exc)
        if lost is not None:  # another process of a torchrun job ended: interrupted, resumable
            writer.set_status(Status.INTERRUPTED, str(lost))
            raise lost from None
        writer.set_status(Status.FAILED, describe_error(exc))
        raise
    finally:
        writer.close()


def describe_error(exc: BaseException) -> str:
    """One line: the error, and the chain of causes behind it."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or (exc.__context__ if not exc.__suppress_context__ else None)
    while cause is not None and len(parts) < 4:
        parts.append(f"caused by {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or (cause.__context__ if not cause.__suppress_context__ else None)
    return "; ".join(parts)


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (bytes); falls back to total physical memory elsewhere."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_check(config: TrainConfig, budget: int | None = None, data: ImageData | None = None) -> MemoryCheck:
    """Estimate a run's memory from the model summary at its batch size and input size, against the budget.

    Before `data` is loaded, its size comes from `held_bytes` (for an image folder, from its files' headers, with
    the decoding of its largest image). A batch is never larger than the training images there are.
    """
    spec = resolve_spec(config.model, **config.overrides)
    side = config.image_size or (data.image_size if data is not None else
                                 NATIVE_SIZE.get(config.dataset, natural_input_size(spec)[1]))
    images = len(data.train_labels) if data is not None else train_size(config.dataset, config.data_dir)
    batch = min(config.batch_size, config.train_subset or config.batch_size, images or config.batch_size)
    summary = summarize(spec, (spec.in_channels, side, side), batch)
    training = summary.training_memory_bytes
    if config.optimizer in ("adam", "adamw"):
        training += summary.total_params * BYTES_PER_FLOAT  # a second moment next to the first
    if data is not None:
        data_bytes = (len(data.train_labels) + len(data.test_labels)) * spec.in_channels * side * side
    else:
        data_bytes = held_bytes(config.dataset, config.data_dir, spec.in_channels, side)
    available = available_memory()
    budget, source = (budget, "the set budget") if budget is not None else default_memory_budget(available)
    return MemoryCheck(training + data_bytes, training, data_bytes, budget, available, source)


def default_memory_budget(available: int) -> tuple[int, str]:
    """(bytes, where they come from): $RESNET_EXPLORER_MEMORY_BUDGET (a size such as 8G, 512M or a byte
    count), else MEMORY_FRACTION of `available`."""
    text = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if not text:
        return int(MEMORY_FRACTION * available), f"{MEMORY_FRACTION:.0%} of the {format_bytes(available)} available"
    match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([KMGT]?)(?:iB|B)?", text, re.IGNORECASE)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{MEMORY_BUDGET_ENV} must be a size above zero such as 8G, 512M or a byte count; "
                         f"got {text!r}")
    return int(float(match[1]) * SIZE_UNITS[match[2].upper()]), f"set by {MEMORY_BUDGET_ENV}"


def guard_memory(config: TrainConfig, budget: int | None = None, data: ImageData | None = None) -> None:
    """Raise MemoryRefused, with the estimate and the budget, when the run would not fit."""
    check = memory_check(config, budget, data)
    if not check.ok:
        raise MemoryRefused(_refusal_message(config, check))


def _refusal_message(config: TrainConfig, check: MemoryCheck) -> str:
    data_note = f", data {format_bytes(check.data_bytes)}" if check.data_bytes else ""
    # Name only what the caller can change: the Train page has batch_size but no image_size control.
    if check.data_bytes >= check.budget_bytes:
        remedy = "the data alone exceeds it: choose a smaller data set (or a lower image_size on the command line)"
    else:
        remedy = "lower batch_size (or image_size on the command line)"
    return (f"batch_size {config.batch_size}: training {config.model} needs about {format_bytes(check.needed_bytes)} "
            f"(training step {format_bytes(check.training_bytes)}{data_note}) but the "
            f"memory budget is {format_bytes(check.budget_bytes)} ({check.budget_source}); {remedy}")


class BackgroundRows:
    """Rows computed one item at a time in a daemon thread; pages poll `snapshot()` (the thread never calls st.*).

    At interpreter exit the thread is told to stop and joined, so no torch call is cut off mid-way.
    """

    def __init__(self, compute: Callable[[Any], dict[str, Any]], items: Sequence[Any]) -> None:
        self.total = len(items)
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._error: str | None = None
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(compute, list(items)), daemon=True)
        self._thread.start()
        atexit.register(self._finish)

    def _run(self, compute: Callable[[Any], dict[str, Any]], items: list[Any]) -> None:
        try:
            for item in items:
                if self._stop.is_set():
                    break
                row = compute(item)
                with self._lock:
                    self._rows.append(row)
        except Exception as exc:  # shown on the page instead of dying silently in the thread
            with self._lock:
                self._error = describe_error(exc)
        finally:
            with self._lock:
                self._done = True

    def _finish(self) -> None:
        self._stop.set()
        self._thread.join()

    def cancel(self) -> None:
        """Compute no further rows (the one under way still ends); for work whose answer is no longer wanted."""
        self._stop.set()

    def snapshot(self) -> tuple[list[dict[str, Any]], bool, str | None]:
        """(rows so far, finished?, error message or None)."""
        with self._lock:
            return list(self._rows), self._done, self._error
