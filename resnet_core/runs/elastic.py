"""A torchrun job that torchrun restarts (`--max-restarts`): the run its restarted workers go on with.

Every run records the torchrun job of its latest start (config.json `distributed.job`: TORCHELASTIC_RUN_ID, which
is torchrun's --rdzv-id, or a fresh uuid with --standalone). When torchrun restarts a job's workers
(TORCHELASTIC_RESTART_COUNT > 0 on any of them), each finds the job's run without being told: its --run-dir, else
the newest run in the runs folder that records the job. `restart_point` says how it goes on: from the run's checkpoint
through `resume.prepare_resume` (the same folder, its metrics cut back to the checkpoint: no lost or repeated
step); a run the job started but never checkpointed starts over in its folder (rank 0 clears it first); no run
yet, a new one. A first start never goes on with anything: an existing --run-dir is refused as always.
Every process reads the run folder (as with --resume), so on several machines it must be a shared one;
`restart_point` checks that all processes go on from the same step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..training.checkpoint import CHECKPOINT
from ..training.config import TrainConfig
from ..training.distributed import ElasticJob, Replicas
from ..validation import shown
from .estimate_log import ESTIMATES
from .resume import RESUMABLE, Resume, prepare_resume
from .store import CONFIG, METRICS, STATUS, RunInfo, list_runs, read_run

_RUN_FILES = (CONFIG, METRICS, STATUS, ESTIMATES)  # what a run folder holds before its first checkpoint
_HALF_WRITTEN = (*_RUN_FILES, CHECKPOINT)  # <name>[.<pid>].tmp: a write that a kill cut short


@dataclass(frozen=True)
class Restart:
    """Where a restarted worker's run goes on."""

    run_dir: Path | None  # the job's run folder; None: no run yet, a new one under runs_root()
    resume: Resume | None = None  # go on from its checkpoint; None: from step 0
    start_over: bool = False  # the folder holds the job's run without a checkpoint: it is cleared and begun again

    @property
    def step(self) -> int:
        return self.resume.state.step if self.resume else 0


def restart_point(replicas: Replicas, run_dir: str | Path | None, config: TrainConfig,
                  sync_bn: bool) -> Restart | None:
    """Where this worker's run goes on when torchrun has restarted the job (every process of the job calls it, once
    the process group is up), else None. `run_dir` is the command's --run-dir (None: the job's newest run in the
    runs folder); `config` and `sync_bn` are the command's, which must be the run's own (torchrun restarts the same
    command). The job counts as restarted when any process says so: each machine's torchrun counts its own restarts
    (TORCHELASTIC_RESTART_COUNT), and one that restarts only because another machine rejoined does not count it.
    All processes go on from the same step or each raises a ValueError; rank 0 clears a run that starts over."""
    job = replicas.elastic
    if job is None or not replicas.sum_tensor(torch.tensor([int(job.restarted)])).item():
        return None
    try:
        restart, problem = _find(job, run_dir, config, sync_bn), None
    except ValueError as exc:
        restart, problem = None, exc
    steps = replicas.gather(torch.tensor([restart.step if restart else -1])).tolist()
    if problem is not None:
        raise problem
    if restart is None or -1 in steps:
        raise ValueError(f"rank {steps.index(-1)} cannot go on with this torchrun job's run (its own error line says "
                         "why)")
    if len(set(steps)) > 1:
        raise ValueError(f"the restarted processes would go on from different steps ({', '.join(map(str, steps))} "
                         f"by rank): every process must see the job's run folder {restart.run_dir} (on several "
                         "machines, a runs folder they share)")
    if restart.start_over and replicas.writes and restart.run_dir is not None:
        clear_unstarted(restart.run_dir)
    return restart


def _find(job: ElasticJob, run_dir: str | Path | None, config: TrainConfig, sync_bn: bool) -> Restart:
    """The run of torchrun job `job` and how it goes on; nothing is written here."""
    folder = Path(run_dir) if run_dir else job_run(job.run_id)
    if folder is None or not (folder / CONFIG).is_file():
        return Restart(folder)  # the job had not stored its run yet
    info = read_run(folder)
    if info.config.distributed.job != job.run_id:
        other = info.config.distributed.job
        raise ValueError(f"run_dir must be a new or empty folder or the run of this torchrun job {shown(job.run_id)}; "
                         f"{folder} holds run {info.run_id} of " + (f"job {shown(other)}" if other else "no torchrun "
                                                                   "job") + " (continue it with --resume)")
    _check_same_command(info, config, sync_bn)
    if not (folder / CHECKPOINT).is_file() and info.status in RESUMABLE:
        return Restart(folder, start_over=True)
    return Restart(folder, prepare_resume(folder))


def job_run(job_id: str) -> Path | None:
    """The folder of the newest run in the runs folder that records torchrun job `job_id`, if any."""
    return next((run.path for run in list_runs() if run.config.distributed.job == job_id), None)


def _check_same_command(info: RunInfo, config: TrainConfig, sync_bn: bool) -> None:
    stored = info.config.train.replace(threads=config.threads, device=config.device)
    changed = [name for name in TrainConfig.__dataclass_fields__ if getattr(stored, name) != getattr(config, name)]
    if sync_bn != info.config.distributed.sync_bn:
        changed.append("sync_bn")
    if changed:
        raise ValueError(f"run {info.run_id} of this torchrun job was started with another {changed[0]}; a restarted "
                         "job goes on with its run's own settings (start a new job, or continue it with --resume)")


def clear_unstarted(run_dir: Path) -> None:
    """Remove the files of a run that never reached a checkpoint (its config, metrics, status and estimates, and
    any file left half-written), so that the run begins again in its folder."""
    for path in run_dir.iterdir():
        if path.name in _RUN_FILES or (path.name.startswith(_HALF_WRITTEN) and path.name.endswith(".tmp")):
            path.unlink()
