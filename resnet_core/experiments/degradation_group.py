"""The degradation group a page shows and follows, and where it stands at one moment.

    shown = ShownGroup.started(set_id, jobs_by_seed, estimate)   # this session started a seed set
    shown = ShownGroup.stored(group_id, runs)                    # a group read back from the run store
    status = shown.status(runner, owner)                         # records, progress, the overall line
    live = shown.is_live(runner, owner)                          # a net of it, or of another seed, still to end

A seed set is one group per seed (seeds.py); the page shows one of them, the first seed's when it starts a set,
and follows every seed's nets until the last has ended. A net's state is its job's while this process runs it
for the page's owner, else its stored run's (`runner.run_state`); nets not started yet take their time left from
the pace measured on the group's nets that trained, scaled to each net (runs/forecast.py), and until one has, from
the estimate task's RunEstimates, a prior (`degradation_status.net_progress`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..runs.background import BackgroundRows
from ..runs.contract import RunState
from ..runs.forecast import Basis, Forecast, measured_rate, scaled, work_of
from ..runs.runner import Job, JobRunner
from ..runs.store import RunInfo, read_metrics
from ..training.config import TrainConfig
from ..training.estimate import RunEstimate
from ..training.records import Record
from .degradation import curves, group_states, run_dirs, summarize_records
from .degradation_nets import Net, parse_net
from .degradation_status import NetProgress, group_text, net_progress, overall, read_queued
from .seeds import SEED_GROUP, seed_group_id


@dataclass(frozen=True)
class NetGroup:
    """One degradation group (one seed's nets): its id, its nets in order, and the ids of the jobs this session
    runs for them (none for a group read back from the run store)."""

    group_id: str
    names: tuple[str, ...]
    job_ids: Mapping[str, str] = field(default_factory=dict)  # net name -> job id

    def jobs(self, runner: JobRunner, owner: str) -> dict[str, Job | None]:
        """The owner's jobs of the group by net name (None where `runner` no longer holds the job)."""
        return {name: runner.get(job_id, owner) for name, job_id in self.job_ids.items()}

    def states(self, runner: JobRunner, owner: str, root: str | Path | None = None) -> dict[str, RunState | None]:
        return group_states(self.group_id, self.names, self.jobs(runner, owner), root)


@dataclass(frozen=True)
class ShownGroup:
    """The group a page shows, the other seeds' groups started with it by the same session, and the task that
    timed its nets before they started."""

    group: NetGroup
    other_seeds: tuple[NetGroup, ...] = ()
    started_here: bool = False  # started by this session, which then knows every seed's group
    estimate: BackgroundRows[dict[str, RunEstimate]] | None = None

    @classmethod
    def stored(cls, group_id: str, runs: Mapping[str, RunInfo], root: str | Path | None = None) -> ShownGroup:
        """A group of the run store: the nets its queued file names, else those with a folder (`runs`)."""
        return cls(NetGroup(group_id, tuple(read_queued(group_id, root) or runs)))

    @classmethod
    def started(cls, set_id: str, jobs_by_seed: Mapping[int, Mapping[str, Job]],
                estimate: BackgroundRows[dict[str, RunEstimate]] | None = None) -> ShownGroup:
        """The seed set `seeds.start_seeds` just submitted (seed -> net name -> job), shown from its first seed."""
        first, *others = (NetGroup(seed_group_id(set_id, seed), tuple(jobs), {n: job.id for n, job in jobs.items()})
                          for seed, jobs in jobs_by_seed.items())
        return cls(first, tuple(others), started_here=True, estimate=estimate)

    @property
    def group_id(self) -> str:
        return self.group.group_id

    @property
    def every_seed(self) -> tuple[NetGroup, ...]:
        """The group shown, then the other seeds' groups started with it."""
        return (self.group, *self.other_seeds)

    def live_jobs(self, runner: JobRunner, owner: str) -> list[Job]:
        """The owner's jobs of every seed's group that are still queued or running."""
        jobs = [job for g in self.every_seed for job in g.jobs(runner, owner).values()]
        return [job for job in jobs if job is not None and not job.done]

    def is_live(self, runner: JobRunner, owner: str, root: str | Path | None = None) -> bool:
        """Whether a net of the group, or of another seed started with it, is still queued or running."""
        return any(state is not None and state.live for g in self.every_seed
                   for state in g.states(runner, owner, root).values())

    def estimates(self) -> dict[str, RunEstimate]:
        """Each net's estimate, once the task has timed them (none before, or without a task)."""
        rows = self.estimate.snapshot()[0] if self.estimate else []
        return rows[0] if rows else {}

    def status(self, runner: JobRunner, owner: str, root: str | Path | None = None) -> GroupStatus:
        """Where the group and the other seeds' groups stand now: states, records and progress of every net."""
        records: dict[str, dict[str, list[Record]]] = {}
        progress: dict[str, list[NetProgress]] = {}
        for g in self.every_seed:
            states, dirs = g.states(runner, owner, root), run_dirs(g.group_id, g.names, root)
            own = records[g.group_id] = {name: read_metrics(dirs[name]) for name in g.names}
            configs = {name: job.config for name, job in g.jobs(runner, owner).items() if job is not None}
            forecasts = self.forecasts(configs, own)
            progress[g.group_id] = [net_progress(name, states[name], own[name], *forecasts.get(name, ()))
                                    for name in g.names]
        own = records[self.group_id]
        return GroupStatus(names=self.group.names, records=own,
                           summaries={name: summarize_records(r) for name, r in own.items() if r},
                           progress=progress[self.group_id],
                           every_run=[p for g in self.every_seed for p in progress[g.group_id]], scope=self.scope())

    def forecasts(self, configs: Mapping[str, TrainConfig],
                  records: Mapping[str, list[Record]]) -> dict[str, tuple[Forecast, int]]:
        """Each net's forecast and planned steps: the pace measured on the latest net of the group that trained
        (its latest records: the load now), scaled to each net; until one has trained, the prior estimates."""
        rates = [measured_rate(configs[n], records[n]) for n in configs if records.get(n)]
        rate = next((r for r in reversed(rates) if r is not None), None)
        if rate is not None:
            return {name: (scaled(config, rate), work_of(config).steps) for name, config in configs.items()}
        return {name: (Forecast(e.seconds, Basis.PRIOR), e.steps) for name, e in self.estimates().items()}

    def scope(self) -> str:
        """What the overall line counts beyond the bars below it: " (2 seeds; the bars below: seed 0)" for a set
        started here, " (the nets of seed 3)" for one seed's group read back, else ""."""
        seed = SEED_GROUP.fullmatch(self.group_id)
        if self.other_seeds and seed:
            return f" ({len(self.other_seeds) + 1} seeds; the bars below: seed {seed.group(2)})"
        return f" (the nets of seed {seed.group(2)})" if seed and not self.started_here else ""


def group_choices(shown: ShownGroup | None, stored: Mapping[str, Any]) -> list[str]:
    """The groups a page offers: the one shown (which may have no folder yet), then the stored ones, newest first."""
    return list(dict.fromkeys(([shown.group_id] if shown else []) + list(stored)))


@dataclass(frozen=True)
class GroupStatus:
    """A shown group at one moment: its nets' records and progress, and the progress of every net of its set."""

    names: tuple[str, ...]
    records: dict[str, list[Record]]  # the shown group's, by net name
    summaries: dict[str, dict[str, Any]]  # `degradation.summarize_records` of each of its nets with records
    progress: list[NetProgress]  # the shown group's nets, in order
    every_run: list[NetProgress]  # those and the other seeds' nets
    scope: str  # see ShownGroup.scope

    @property
    def live(self) -> bool:
        return any(p.status is not None and p.status.live for p in self.every_run)

    def overall(self) -> tuple[float, str]:
        """The whole set's share done and its line, "Overall: 1 of 8 nets done · about 3 min left (2 seeds; …)"."""
        done, text = overall(self.every_run)
        return done, text + self.scope

    def text(self) -> str:
        return group_text(self.names, self.progress)

    def curves(self) -> dict[Net, dict[str, pd.DataFrame]]:
        """`degradation.curves` of each net with records, for `ui.experiment_figures.degradation_figure`."""
        return {parse_net(name): curves(r) for name, r in self.records.items() if r}

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per net: its status label, step, final train loss and test accuracy in % (one decimal)."""
        rows = []
        for p in self.progress:
            summary = self.summaries.get(p.name, {})
            acc = summary.get("test_acc")
            rows.append({"net": p.name, "status": p.label, "step": p.step,
                         "final train loss": summary.get("final_train_loss"),
                         "test accuracy %": None if acc is None else round(100 * acc, 1)})
        return rows
