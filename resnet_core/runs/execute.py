"""`execute`: one run into the store, in this thread: load data, write the run folder, train, save weights and
status. The job runner's worker threads and the command line both call it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..data.image_data import ImageData
from ..formatting import describe_error
from ..models.resnet import ResNet
from ..training.checkpoint import save_checkpoint
from ..training.config import TrainConfig, cores, resolve_device
from ..training.distributed import SINGLE, Replicas
from ..training.engine import Diverged, FitResult, fit, load_data, resumed_model
from ..training.hardware import torch_threads
from ..training.records import Record, Status
from ..training.settings import RunSettings, deferred_settings, resolve_settings
from ..training.thread_choice import LoadReading, ThreadChoice, run_threads
from .contract import DataFacts, DistributedFacts, RunConfig, TransferFacts
from .estimate_log import EstimateLog
from .memory import guard_memory
from .resume import Resume, continue_metrics
from .store import RunWriter, create_run
from .transfer import initial_model


def execute(config: TrainConfig, *, run_dir: str | Path | None = None, data: ImageData | None = None,
            on_record: Callable[[Record], None] | None = None, stop: threading.Event | None = None,
            on_start: Callable[[RunWriter], None] | None = None, memory_budget: int | None = None,
            replicas: Replicas = SINGLE, resume: Resume | None = None,
            pausing: threading.Event | None = None) -> FitResult:
    """One run into the store, in this thread: load data, write the run folder, train, save weights and status.

    The run folder is runs_root()/<new id> unless `run_dir` is given; `resume` goes on in its stored run's folder
    from its checkpoint, with its stored settings. Raises MemoryRefused (against `memory_budget`, default
    `default_memory_budget`) before anything is written; later errors propagate after being written to the
    folder's status. In a torchrun job (`replicas`) every rank trains and rank 0 alone writes. A stop while
    `pausing` is set is a pause (runs/scheduler.py): the folder keeps its checkpoint and says queued, to go on with
    `resume.resume_paused`.
    """
    config.validate()
    reading = LoadReading() if _chooses_threads(config, replicas, resume) else None
    with torch_threads(config.threads):  # once, around the precision measurement and the training alike
        return _execute(config, run_dir, data, on_record, stop, on_start, memory_budget, replicas, resume, pausing,
                        reading)


def _chooses_threads(config: TrainConfig, replicas: Replicas, resume: Resume | None) -> bool:
    """A new run of one process on the CPU that leaves its threads open (a torchrun job's ranks share the cores on
    purpose; a resumed run keeps the count it stored)."""
    return (config.threads is None and resume is None and not replicas.distributed
            and resolve_device(config.device).type == "cpu")


def _execute(config: TrainConfig, run_dir: str | Path | None, data: ImageData | None,
             on_record: Callable[[Record], None] | None, stop: threading.Event | None,
             on_start: Callable[[RunWriter], None] | None, memory_budget: int | None, replicas: Replicas,
             resume: Resume | None, pausing: threading.Event | None, reading: LoadReading | None) -> FitResult:
    guard_memory(config, memory_budget, data)
    data = data if data is not None else load_data(config)
    if resume is not None:
        _check_resumed_data(data, resume)
    model, transfer = _starting_model(config, data, resume)  # a bad init_from source: nothing written
    choice = run_threads(reading) if reading is not None else None
    stored = resume.info.config.settings.threads if resume and config.threads is None else None
    stored = min(stored, cores()) if stored else None  # a run stored on a machine with more cores
    with torch_threads(choice.threads if choice else stored):
        return _train(config, run_dir, data, model, transfer, choice, on_record, stop, on_start, replicas, resume,
                      pausing)


def _train(config: TrainConfig, run_dir: str | Path | None, data: ImageData, model: ResNet,
           transfer: TransferFacts | None, choice: ThreadChoice | None, on_record: Callable[[Record], None] | None,
           stop: threading.Event | None, on_start: Callable[[RunWriter], None] | None, replicas: Replicas,
           resume: Resume | None, pausing: threading.Event | None) -> FitResult:
    """The run with its model and data ready, on its threads: its settings, its folder, its training."""
    deferred = None if resume or replicas.distributed else deferred_settings(config, data, model)
    if deferred is not None:
        settings, measure = deferred[0], _threads_in(deferred[1], choice)
    else:
        settings = resume.info.config.settings if resume else resolve_settings(config, data, model, replicas)
    settings = _with_threads(settings, choice)
    train = functools.partial(fit, config, data=data, model=model, stop=stop, settings=settings, replicas=replicas,
                              resume=resume.state if resume else None)
    if not replicas.writes:  # every rank starts from the same weights and freezes the same parameters
        try:
            return train()
        except RuntimeError as exc:
            lost = replicas.peer_lost(exc)
            if lost is None:
                raise
            raise lost from None
    batch = min(config.batch_size, len(data.train_labels))
    facts = DistributedFacts(replicas.world_size, replicas.backend, batch // replicas.world_size, replicas.sync_bn,
                             replicas.job)
    run_config = RunConfig(config, model.spec, DataFacts.from_dict(data.describe()), settings, transfer=transfer,
                           distributed=facts)
    writer = _writer(run_config, run_dir, resume)
    try:
        writer.set_status(Status.RUNNING)
        if on_start is not None:
            on_start(writer)
        estimates = EstimateLog(writer.path)
        result = train(on_record=_both(_both(writer.append, estimates), on_record),
                       checkpoint=lambda train_state: save_checkpoint(writer.path, train_state),
                       settle=(lambda: _settled(writer, measure())) if deferred is not None else None)
        stopped = result.status == Status.STOPPED
        if stopped and pausing is not None and pausing.is_set():
            writer.set_status(Status.QUEUED, f"paused at step {result.final.steps} for an interactive run")
            return result
        writer.save_weights(result.model)
        writer.set_status(result.status, "stopped by the user" if stopped else "", result.final)
        return result
    except BaseException as exc:
        _write_failure(writer, exc, replicas)
        raise
    finally:
        writer.close()


def _with_threads(settings: RunSettings, choice: ThreadChoice | None) -> RunSettings:
    return settings if choice is None else replace(settings, threads=choice.threads, threads_reason=choice.reason)


def _threads_in(measure: Callable[[], RunSettings], choice: ThreadChoice | None) -> Callable[[], RunSettings]:
    """`measure`, its settings carrying the run's thread choice too."""
    return lambda: _with_threads(measure(), choice)


def _starting_model(config: TrainConfig, data: ImageData, resume: Resume | None) -> tuple[ResNet, TransferFacts | None]:
    """The model a run starts (or goes on) with, and its TransferFacts: a resumed run keeps its stored ones."""
    device = resolve_device(config.device)
    if resume:
        return resumed_model(config, data, device), resume.info.config.transfer
    return initial_model(config, data, device)


def _check_resumed_data(data: ImageData, resume: Resume) -> None:
    """The data loaded again must be as many images as the checkpoint's epoch covers: a folder that changed since
    is refused here, before the run folder is touched."""
    now, then = len(data.train_labels), resume.state.order.numel()
    if now != then:
        raise ValueError(f"resume: run {resume.info.run_id}'s checkpoint covers {then} training images, its data now "
                         f"hold {now}; the run's data set has changed")


def _writer(run_config: RunConfig, run_dir: str | Path | None, resume: Resume | None) -> RunWriter:
    """A new run folder, or the resumed run's own, its metrics cut back to what the checkpoint had seen."""
    if not resume:
        return create_run(run_config, run_dir)
    continue_metrics(resume.path, resume.records)
    stored = resume.info.config
    return RunWriter(resume.path, replace(run_config, run_id=stored.run_id, created=stored.created), existing=True)


def _settled(writer: RunWriter, settings: RunSettings) -> RunSettings:
    """The settings measured after step 1, into the run's config.json (written with step 1's before)."""
    writer.update_settings(settings)
    return settings


def _both(first: Callable[[Record], None], second: Callable[[Record], None] | None) -> Callable[[Record], None]:
    def record(r: Record) -> None:
        first(r)
        if second is not None:
            second(r)
    return record


def _write_failure(writer: RunWriter, exc: BaseException, replicas: Replicas) -> None:
    """The run's status after `exc`: diverged, interrupted (another process of a torchrun job ended, so it can be
    resumed; raised as PeerLost) or failed."""
    if isinstance(exc, Diverged):
        writer.set_status(Status.DIVERGED, str(exc))
        return
    lost = replicas.peer_lost(exc)
    if lost is not None:
        writer.set_status(Status.INTERRUPTED, str(lost))
        raise lost from None
    writer.set_status(Status.FAILED, describe_error(exc))
