"""Seeds as an axis: the same experiment run with K seeds, and the mean and spread of its curves across them.

A seed set of the degradation experiment is K ordinary degradation groups, one per seed, named
<set id>-seed<s>; each run folder is <set id>-seed<s>-<net>. Every page that reads one degradation group reads
each seed of a set as a group of its own; `list_seed_sets` gathers them back. The seeds are the config's
seed, seed + 1, ... seed + K - 1: the weights, the batch order (and with it the curves) differ between seeds,
and within one seed the four nets see the same batches (see degradation.py).

`seed_curves` gives, per net, each seed's train-loss and test curves and their mean and sample standard
deviation over the seeds at each logged step (steps that every seed reached). `paper_lines` holds the
published test errors the figures draw as reference lines, each with the setting it was measured in.
`lesion_summary` folds the lesion studies of a set's runs (`SeedLesion`) into one `NetLesions` per net.
`unlike_runs` names the runs of a set not trained like its first (runs/pairing.py), and `first_alike` the newest
set whose runs all were: the set a page shows first.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.presets import HE2015, PRESETS
from ..runs.contract import new_run_id
from ..runs.execute import execute
from ..runs.pairing import Difference, unlike_pairs
from ..runs.runner import Job, JobRunner
from ..runs.scheduler import Priority
from ..runs.store import RunInfo, list_runs, read_metrics, runs_root
from ..training.config import TrainConfig
from ..training.engine import FitResult
from ..training.records import Record
from ..validation import check_int
from . import degradation
from .degradation import DegradationConfig, curves, summarize_records
from .degradation_nets import parse_net
from .degradation_status import write_queued
from .lesion import LesionResult, lesion_row

MAX_SEEDS = 10
SEED_GROUP = re.compile(r"(.+)-seed(\d+)")
REPEAT_RUN = re.compile(r"(.+-repeat-[0-9a-f]{4})-seed(\d+)")  # a run of a training repeated with N seeds
LI2018_TABLE1 = ("Li, Xu, Taylor, Studer, Goldstein. Visualizing the Loss Landscape of Neural Nets. NeurIPS 2018 "
                 "(arXiv:1712.09913), Table 1")
# Li et al. Table 1: CIFAR-10 test error (%) of ResNets with and without skip connections.
LI2018_ERRORS = {20: (7.37, 8.18), 56: (5.89, 13.31), 110: (5.79, 16.44)}  # depth: (with skip, without)
HE2015_SETTING = "CIFAR-10 at 32×32, 64k iterations of batch 128, crop + flip augmentation"
LI2018_SETTING = "CIFAR-10 at 32×32, the paper's full training schedule"


def seed_list(config: DegradationConfig, seeds: int) -> list[int]:
    check_int("seeds", seeds, 1, MAX_SEEDS)
    return [config.seed + i for i in range(seeds)]


def seed_group_id(set_id: str, seed: int) -> str:
    return f"{set_id}-seed{seed}"


def seed_configs(config: DegradationConfig, seeds: int) -> dict[int, DegradationConfig]:
    config.validate()
    return {s: dataclasses.replace(config, seed=s).validate() for s in seed_list(config, seeds)}


def start_seeds(config: DegradationConfig, seeds: int, runner: JobRunner, owner: str = "",
                root: str | Path | None = None) -> tuple[str, dict[int, dict[str, Job]]]:
    """Submit the four nets for every seed (seed by seed) to `runner`; (set id, seed -> name -> job).

    If one is refused (the memory guard), those already queued are stopped and the ValueError is raised."""
    configs = seed_configs(config, seeds)
    set_id = degradation.new_group_id()
    jobs: dict[int, dict[str, Job]] = {}
    try:
        for seed, seed_config in configs.items():
            dirs = degradation.run_dirs(seed_group_id(set_id, seed), seed_config.nets(), root)
            train_configs = seed_config.train_configs()
            write_queued(seed_group_id(set_id, seed), train_configs, root)  # names the nets a stop leaves unstarted
            jobs[seed] = {}
            for name, train_config in train_configs.items():
                jobs[seed][name] = runner.submit(train_config, owner=owner, run_dir=str(dirs[name]),
                                                   priority=Priority.BATCH)
    except ValueError:
        for by_name in jobs.values():
            for job in by_name.values():
                job.stop()
        raise
    return set_id, jobs


def run_seeds(config: DegradationConfig, seeds: int, root: str | Path | None = None,
              on_result: Callable[[int, str, FitResult, Path], None] | None = None) -> dict[str, Any]:
    """Train the four nets for every seed in this thread; the `seed_summary` of the set."""
    configs = seed_configs(config, seeds)
    set_id = degradation.new_group_id()
    records: dict[str, dict[int, tuple[str, list[Record]]]] = {}
    for seed, seed_config in configs.items():
        dirs = degradation.run_dirs(seed_group_id(set_id, seed), seed_config.nets(), root)
        for name, train_config in seed_config.train_configs().items():
            result = execute(train_config, run_dir=dirs[name])
            if on_result is not None:
                on_result(seed, name, result, dirs[name])
            records.setdefault(name, {})[seed] = (str(dirs[name]), result.records)
    return dict(set_id=set_id, seeds=list(configs), nets=seed_summary(records))


# ---------------------------------------------------------------- reading sets back


def list_seed_sets(root: str | Path | None = None) -> dict[str, dict[int, dict[str, RunInfo]]]:
    """Seed sets in the run store, newest first: set id -> seed -> {net name: run}."""
    sets: dict[str, dict[int, dict[str, RunInfo]]] = {}
    for group_id, runs in degradation.list_groups(root).items():
        match = SEED_GROUP.fullmatch(group_id)
        if match:
            sets.setdefault(match.group(1), {})[int(match.group(2))] = runs
    return {set_id: dict(sorted(by_seed.items())) for set_id, by_seed in sorted(sets.items(), reverse=True)}


def set_records(seed_set: Mapping[int, Mapping[str, RunInfo]]) -> dict[str, dict[int, tuple[str, list[Record]]]]:
    """net name -> seed -> (run folder, its records), read from the store."""
    out: dict[str, dict[int, tuple[str, list[Record]]]] = {}
    for seed, runs in seed_set.items():
        for name, info in runs.items():
            out.setdefault(name, {})[seed] = (str(info.path), read_metrics(info.path))
    return out


def mean_std(columns: Sequence[Sequence[float]]) -> tuple[list[float], list[float | None]]:
    """Per position: the mean over the sequences and their sample standard deviation (None for one sequence);
    only the positions every sequence reached."""
    length = min((len(c) for c in columns), default=0)
    rows = [[c[i] for c in columns] for i in range(length)]
    return ([statistics.fmean(r) for r in rows],
            [statistics.stdev(r) if len(r) > 1 else None for r in rows])


def net_kind(name: str) -> dict[str, Any]:
    """The skip and depth of a degradation net named `name`, as the summaries and curves here carry them."""
    net = parse_net(name)
    return dict(skip=net.skip, depth=net.depth)


def seed_summary(records: Mapping[str, Mapping[int, tuple[str, Sequence[Record]]]]) -> dict[str, dict[str, Any]]:
    """Per net: `seeds` (a list of {seed, run_dir, train_loss, test_acc}), the logged `steps` every seed
    reached, and `mean` and `std` of train_loss (per step), final_train_loss and test_acc over the seeds."""
    out = {}
    for name, by_seed in records.items():
        rows = []
        for seed, (run_dir, recs) in sorted(by_seed.items()):
            s = summarize_records(recs)
            rows.append(dict(seed=seed, run_dir=run_dir, steps=s["steps"], train_loss=s["train_loss"],
                             final_train_loss=s["final_train_loss"], test_acc=s["test_acc"]))
        loss_mean, loss_std = mean_std([r["train_loss"] for r in rows])
        steps = min((r["steps"] for r in rows), key=len)[:len(loss_mean)]
        mean, std = dict(train_loss=loss_mean), dict(train_loss=loss_std)
        for key in ("final_train_loss", "test_acc"):
            values = [r[key] for r in rows if r[key] is not None]
            mean[key] = statistics.fmean(values) if values else None
            std[key] = statistics.stdev(values) if len(values) > 1 else None
        out[name] = dict(seeds=[{k: r[k] for k in ("seed", "run_dir", "train_loss", "test_acc")} for r in rows],
                         steps=steps, mean=mean, std=std, **net_kind(name))
    return out


def band_curves(records: Mapping[str, Mapping[int, tuple[str, Sequence[Record]]]],
                kinds: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """For the figures, per net: skip, depth, and for "train" (loss) and "test" (loss, acc) each seed's curve
    (a DataFrame) plus the mean and std per step across seeds. `kinds` gives each name's skip and depth (default:
    read from a degradation net name, "plain56")."""
    out = {}
    for name, by_seed in records.items():
        per_seed = {seed: curves(recs) for seed, (_, recs) in sorted(by_seed.items())}
        kind = dict(kinds[name]) if kinds else net_kind(name)
        entry: dict[str, Any] = dict(kind, seeds=per_seed)
        for part, columns in (("train", ("loss",)), ("test", ("loss", "acc"))):
            frames = [c[part] for c in per_seed.values()]
            length = min((len(f) for f in frames), default=0)
            stats: dict[str, Any] = dict(step=list(frames[0].step[:length]) if frames else [])
            for column in columns:
                stats[column], stats[f"{column}_std"] = mean_std([list(f[column]) for f in frames])
            entry[part] = stats
        out[name] = entry
    return out


def describe_seeds(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """From the numbers: for each kind, the deeper vs the shallower net's final train loss as mean ± std over the
    seeds, and in how many seeds the deeper one ended higher."""
    lines = []
    for skip, kind in ((False, "plain"), (True, "residual")):
        pair = sorted((s["depth"], name) for name, s in summary.items() if s["skip"] == skip)
        if len(pair) != 2:
            continue
        (_, shallow), (_, deep) = pair
        finals = {name: {r["seed"]: _final(r["train_loss"], summary[name]["steps"]) for r in summary[name]["seeds"]}
                  for name in (shallow, deep)}
        seeds = sorted(s for s in finals[shallow] if s in finals[deep] and None not in
                       (finals[shallow][s], finals[deep][s]))
        if not seeds:
            continue
        higher = sum(finals[deep][s] > finals[shallow][s] for s in seeds)
        lines.append(f"**{kind.capitalize()}**: final train loss {deep} {_pm(summary[deep])} vs {shallow} "
                     f"{_pm(summary[shallow])} over {len(seeds)} seed(s); the deeper net ended higher in "
                     f"{higher} of {len(seeds)}.")
    return lines


def _final(losses: Sequence[float], steps: Sequence[int]) -> float | None:
    """The mean logged loss over the last FINAL_FRACTION of the steps, as degradation.final_train_loss."""
    n = min(len(losses), len(steps))
    if not n:
        return None
    start = steps[n - 1] * (1 - degradation.FINAL_FRACTION)
    return statistics.fmean(v for v, step in zip(losses[:n], steps[:n]) if step > start)


def _pm(net: Mapping[str, Any]) -> str:
    mean, std = net["mean"]["final_train_loss"], net["std"]["final_train_loss"]
    if mean is None:
        return "—"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def paper_lines() -> list[dict[str, Any]]:
    """Published CIFAR-10 test errors: He et al. Table 6 (ResNets) and Li et al. Table 1 (with and without skip
    connections); each row: net, depth, skip, test_error (%), source, paper (short), setting (the paper's, not
    ours)."""
    rows = [dict(net=p.name, depth=p.spec.depth, skip=True, test_error=p.reference["test_error"], source=HE2015,
                 paper="He et al. 2015, Table 6", setting=HE2015_SETTING)
            for p in PRESETS.values() if p.family == "cifar" and p.reference.get("source") == HE2015]
    for depth, (with_skip, without) in LI2018_ERRORS.items():
        for skip, error in ((True, with_skip), (False, without)):
            rows.append(dict(net=f"{'resnet' if skip else 'plain'}{depth}", depth=depth, skip=skip, test_error=error,
                             source=LI2018_TABLE1, paper="Li et al. 2018, Table 1", setting=LI2018_SETTING))
    return rows


# ---------------------------------------------------------------- the lesion study over seeds


def set_runs(seed_set: Mapping[int, Mapping[str, RunInfo]]) -> list[tuple[int, str, RunInfo]]:
    """(seed, net name, run) of every run of a seed set, seed by seed."""
    return [(seed, name, info) for seed, runs in seed_set.items() for name, info in runs.items()]


def unlike_runs(runs: Sequence[RunInfo]) -> list[tuple[RunInfo, RunInfo, list[Difference]]]:
    """The runs of a set (in order) that were not trained like its first (runs.pairing): a run stopped early, or
    one resumed with other settings, puts unlike runs into one band."""
    return unlike_pairs(list(runs))


def first_alike(sets: Mapping[str, Sequence[RunInfo]]) -> str | None:
    """The first set id (sets come newest first) whose runs were all trained alike; None when none was."""
    return next((set_id for set_id, runs in sets.items() if not unlike_runs(runs)), None)


@dataclass(frozen=True)
class SeedLesion:
    """The lesion study of one run of a seed set."""

    seed: int
    net: str  # "resnet20"
    result: LesionResult

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SeedLesion:
        """The inverse of `seed_lesion_row` for a run that could be studied."""
        lesion_fields = {k: v for k, v in row.items() if k not in ("seed", "net")}
        return cls(row["seed"], row["net"], LesionResult.from_dict(lesion_fields))


def seed_lesion_row(seed: int, net: str, run_dir: str | Path, limit: int | None = None) -> dict[str, Any]:
    """`lesion.lesion_row` of one run of a seed set with its seed and net: a JSON-ready row for a background
    task, read back by `SeedLesion.from_row` (or {"name", "error", ...} for a run that cannot be studied)."""
    return dict(lesion_row(run_dir, limit), seed=seed, net=net)


@dataclass(frozen=True)
class NetLesions:
    """One net's lesion study over the seeds of a set."""

    skip: bool
    depth: int
    blocks: list[str]  # names, in forward order
    deletable: list[bool]
    seeds: dict[int, list[float | None]]  # seed -> accuracy after deleting each block (None: not deletable)
    mean: list[float | None]  # per block over the seeds; None where it is not deletable
    std: list[float | None]  # sample std; also None for one seed
    intact_mean: float
    intact_std: float | None


def lesion_summary(lesions: Sequence[SeedLesion]) -> dict[str, NetLesions]:
    """The lesion studies of the runs of a seed set, per net: the accuracy after deleting each block in each seed,
    and its mean and sample std over the seeds, and those of the intact accuracy."""
    by_net: dict[str, list[SeedLesion]] = {}
    for lesion in lesions:
        by_net.setdefault(lesion.net, []).append(lesion)
    out = {}
    for name, runs in by_net.items():
        runs = sorted(runs, key=lambda r: r.seed)
        first = runs[0].result
        per_seed = {r.seed: [b.acc for b in r.result.blocks] for r in runs}
        deletable = [b.deletable for b in first.blocks]
        mean, std = [], []
        for i, ok in enumerate(deletable):
            values = [accs[i] for accs in per_seed.values() if ok and accs[i] is not None]
            mean.append(statistics.fmean(values) if values else None)
            std.append(statistics.stdev(values) if len(values) > 1 else None)
        intact = [r.result.baseline_acc for r in runs]
        out[name] = NetLesions(**net_kind(name), blocks=[b.block for b in first.blocks],
                               deletable=deletable, seeds=per_seed, mean=mean, std=std,
                               intact_mean=statistics.fmean(intact),
                               intact_std=statistics.stdev(intact) if len(intact) > 1 else None)
    return out


# ---------------------------------------------------------------- one training run repeated with N seeds


def start_repeats(config: TrainConfig, repeats: int, runner: JobRunner, owner: str = "",
                  root: str | Path | None = None) -> tuple[str, list[Job]]:
    """Submit `config` with seeds seed, seed + 1, ... (`repeats` runs) to `runner`; (set id, jobs in seed order).
    The runs' folders are <root>/<set id>-seed<s>. If one is refused, those already queued are stopped."""
    check_int("repeats", repeats, 1, MAX_SEEDS)
    config.validate()
    set_id = new_run_id(f"{config.model}-repeat")
    base = Path(root) if root else runs_root()
    jobs: list[Job] = []
    try:
        for seed in range(config.seed, config.seed + repeats):
            run_dir = str(base / f"{set_id}-seed{seed}")
            jobs.append(runner.submit(config.replace(seed=seed), owner=owner, run_dir=run_dir, priority=Priority.BATCH))
    except ValueError:
        for job in jobs:
            job.stop()
        raise
    return set_id, jobs


def list_repeat_sets(root: str | Path | None = None) -> dict[str, dict[int, RunInfo]]:
    """Trainings repeated with several seeds, newest first: set id -> seed -> run."""
    sets: dict[str, dict[int, RunInfo]] = {}
    for info in list_runs(root):
        match = REPEAT_RUN.fullmatch(info.run_id)
        if match:
            sets.setdefault(match.group(1), {})[int(match.group(2))] = info
    return {set_id: dict(sorted(by_seed.items())) for set_id, by_seed in sorted(sets.items(), reverse=True)}


def repeat_curves(repeat_set: Mapping[int, RunInfo]) -> dict[str, dict[str, Any]]:
    """`band_curves` of a repeated training: one entry named after its model."""
    if not repeat_set:
        return {}
    first = next(iter(repeat_set.values()))
    name = first.config.train.model
    records = {name: {seed: (str(info.path), read_metrics(info.path)) for seed, info in repeat_set.items()}}
    records = {n: {s: r for s, r in by_seed.items() if r[1]} for n, by_seed in records.items()}
    if not records[name]:
        return {}
    return band_curves(records, {name: dict(skip=first.skip, depth=first.config.spec.depth)})
