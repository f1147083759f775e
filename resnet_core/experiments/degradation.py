"""The degradation experiment (He et al. 2015, Fig. 6): plain and residual nets of two depths, trained alike.

`DegradationConfig` turns one budget into four `TrainConfig`s that differ only in depth and in the
identity shortcut; the seed and data settings are shared, so the four runs see the same batches in
the same order (see training/engine.py). `start` submits them to the job runner as background runs whose
folders share a group id; `run` trains them one after another in this thread (the CLI).
`summarize_records` and `describe` read the curves back and say, from the numbers, whether the deeper
plain net ended with a higher training loss than the shallower one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.sets import DATASETS
from ..models.presets import HE2015, PRESETS
from ..runs.contract import RunState, new_run_id
from ..runs.execute import execute
from ..runs.runner import Job, JobRunner, run_state
from ..runs.scheduler import Priority
from ..runs.store import RunInfo, list_runs, newest_plain_and_residual, read_metrics, runs_root
from ..training.config import TrainConfig
from ..training.engine import FitResult
from ..training.options import Widget, check_option, declared_options, option
from ..training.records import FinalRecord, Record, TestRecord, TrainRecord, final_of, of_kind
from .degradation_nets import NET_NAME, Net, parse_net
from .degradation_status import write_queued

GROUP_TAG = "degradation"
PRECISION = "fp32"  # fixed, not "auto": the four nets' losses are compared, so every machine computes them alike
FINAL_FRACTION = 0.1  # the final train loss is the mean over this last share of the logged steps
CLEARLY_HIGHER = 0.1  # a gap in final train loss must exceed this share of the shallower net's loss...
NOISE_SE = 3.0  # ...and this many standard errors of the two final means to count as "clearly" higher
PLAIN_REFERENCE = ("He et al. 2015, Fig. 6 (left): on CIFAR-10 the 56-layer plain net has higher training error "
                   "(and test error) than the 20-layer plain net throughout training; Table 6 gives no plain-net "
                   "numbers.")


@dataclass(frozen=True)
class DegradationConfig:
    """The experiment's options, each declared once (bounds, flag, help, widget: training/options.py); the
    `degradation` command's flags and the Degradation page's widgets are generated from them."""

    shallow: int = option(3, low=1, high=200, flag="--shallow",
                          help="blocks per stage of the shallower pair (depth 6 × blocks + 2: 3 → 20 layers)",
                          widget=Widget("slider", "Shallow pair: blocks per stage", 1, 18))
    deep: int = option(9, low=1, high=200, flag="--deep", help="blocks per stage of the deeper pair (9 → 56 layers)",
                       widget=Widget("slider", "Deep pair: blocks per stage", 2, 36))
    # The default budget (~3 min on 2 CPU cores) is the smallest tried where the effect appears; see README.
    steps: int = option(600, low=1, high=100_000, flag="--steps", help="optimizer steps per net",
                        widget=Widget("number", "Steps per net", step=100))
    batch_size: int = option(64, low=2, high=4096, flag="--batch-size",
                             widget=Widget("select_slider", "Batch size", choices=(16, 32, 64, 128, 256)))
    lr: float = option(0.1, low=0.0, high=100.0, open="low", flag="--lr",
                       help="peak of the one-cycle schedule (SGD, nesterov momentum 0.9, weight decay 5e-4)",
                       widget=Widget("number", "Peak learning rate", 1e-4, 10.0, 0.01, "%.3f"))
    width: int = option(16, low=1, high=256, flag="--width", help="planes of the first stage, as in He et al.",
                        widget=Widget("select_slider", "Width (first stage)", choices=(4, 8, 16, 32)))
    image_size: int = option(16, low=8, high=64, flag="--image-size", help="images are resized to this side (He et "
                             "al.: 32)", widget=Widget("select_slider", "Image side", choices=(8, 16, 32)))
    dataset: str = option("synthetic", choices=DATASETS, flag="--dataset",
                          widget=Widget("select", "Data set", choices=tuple(d for d in DATASETS if d != "imagefolder")))
    data_dir: str | None = option(None, flag="--data-dir", help="where mnist, fashion_mnist and cifar10 are (or are "
                                  "downloaded to)")
    seed: int = option(0, low=0, high=2**63 - 1, flag="--seed", help="weights and batch order; the same for the "
                       "four nets", widget=Widget("number", "Seed", high=2**31 - 1))
    augment: bool = option(False, flag="--augment", help="random crop + flip (off: the training loss then measures "
                           "fitting, not fitting of random crops)", widget=Widget("toggle", "Augment (crop + flip)"))
    log_every: int = option(10, low=1, high=1_000_000, flag="--log-every", help="steps between train records")
    probe_every: int = option(20, low=0, high=1_000_000, flag="--probe-every",
                              help="steps between probe records (the Signal-flow page's heatmap reads them)")
    test_subset: int | None = option(1000, low=1, high=10**9, flag="--test-subset",
                                     help="evaluate on the first N test images")

    def validate(self) -> DegradationConfig:
        for opt in declared_options(DegradationConfig):
            check_option(opt, getattr(self, opt.name))
        if self.deep <= self.shallow:
            raise ValueError(f"deep must be more blocks per stage than shallow={self.shallow}; got {self.deep}")
        for config in self.train_configs().values():
            config.validate()
        return self

    def replace(self, **changes: Any) -> DegradationConfig:
        return dataclasses.replace(self, **changes).validate()

    def nets(self) -> dict[str, Net]:
        """name -> Net: plain then residual, shallow then deep."""
        nets = [Net.of(skip, n) for skip in (False, True) for n in (self.shallow, self.deep)]
        return {net.name: net for net in nets}

    def train_configs(self) -> dict[str, TrainConfig]:
        configs = {}
        for name, net in self.nets().items():
            preset = name if name in PRESETS else ("resnet20" if net.skip else "plain20")
            overrides: dict[str, Any] = dict(width=self.width)
            if PRESETS[preset].spec.layers != (net.blocks,) * 3:
                overrides["layers"] = (net.blocks,) * 3
            configs[name] = TrainConfig(
                model=preset, overrides=overrides, dataset=self.dataset, data_dir=self.data_dir,
                image_size=self.image_size, augment="crop+flip" if self.augment else "none", precision=PRECISION,
                max_steps=self.steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                log_every=self.log_every, probe_every=self.probe_every, test_subset=self.test_subset)
        return configs

    def describe(self) -> str:
        """What is run, in one sentence for the page and the CLI."""
        return f"{', '.join(self.nets())}: {self.settings_text()}"

    def settings_text(self) -> str:
        """The settings the four nets share, without their names."""
        return (f"width {self.width}, {self.image_size}×{self.image_size} `{self.dataset}` images"
                f"{' with crop+flip augmentation' if self.augment else ' without augmentation'}, {self.steps} SGD "
                f"steps of batch {self.batch_size} (one-cycle, peak lr {self.lr:g}, nesterov momentum 0.9, "
                f"weight decay 5e-4), "
                f"seed {self.seed}; the same batches in the same order for all four; test on "
                f"{'all' if self.test_subset is None else f'the first {self.test_subset}'} test images.")


# ---------------------------------------------------------------- running


def new_group_id() -> str:
    return new_run_id(GROUP_TAG)


def run_dirs(group_id: str, names: Iterable[str], root: str | Path | None = None) -> dict[str, Path]:
    """The run folders of a group: <root>/<group id>-<net name>, siblings of every other run."""
    base = Path(root) if root else runs_root()
    return {name: base / f"{group_id}-{name}" for name in names}


def start(config: DegradationConfig, runner: JobRunner, owner: str = "",
          root: str | Path | None = None) -> tuple[str, dict[str, Job]]:
    """Submit the four runs to `runner` (background threads, its queue and memory guard).

    Returns the group id and name -> job; if one is refused, those already queued are stopped.
    """
    configs = config.validate().train_configs()
    group_id = new_group_id()
    dirs = run_dirs(group_id, configs, root)
    write_queued(group_id, configs, root)  # a net stopped while queued gets no folder: this file still names it
    jobs: dict[str, Job] = {}
    try:
        for name, train_config in configs.items():
            jobs[name] = runner.submit(train_config, owner=owner, run_dir=str(dirs[name]), priority=Priority.BATCH)
    except ValueError:
        for job in jobs.values():
            job.stop()
        raise
    return group_id, jobs


def run(config: DegradationConfig, root: str | Path | None = None,
        on_result: Callable[[str, FitResult, Path], None] | None = None) -> dict[str, dict[str, Any]]:
    """Train the four nets one after another in this thread; name -> summary (see `summarize_records`)."""
    configs = config.validate().train_configs()
    dirs = run_dirs(new_group_id(), configs, root)
    summaries = {}
    for name, train_config in configs.items():
        result = execute(train_config, run_dir=dirs[name])
        if on_result is not None:
            on_result(name, result, dirs[name])
        summaries[name] = dict(summarize_records(result.records), run_dir=str(dirs[name]))
    return summaries


# ---------------------------------------------------------------- reading results


def list_groups(root: str | Path | None = None) -> dict[str, dict[str, RunInfo]]:
    """Degradation groups in the run store, newest first: group id -> {net name: run}, plain before residual,
    shallow before deep."""
    groups: dict[str, dict[str, RunInfo]] = {}
    for info in list_runs(root):
        group, _, name = info.run_id.rpartition("-")
        if f"-{GROUP_TAG}-" in f"{group}-" and NET_NAME.fullmatch(name):
            groups.setdefault(group, {})[name] = info

    def order(name: str) -> tuple[bool, int]:
        net = parse_net(name)
        return net.skip, net.depth

    return {group_id: {name: runs[name] for name in sorted(runs, key=order)}
            for group_id, runs in sorted(groups.items(), reverse=True)}


def config_of_group(group: Mapping[str, RunInfo]) -> DegradationConfig:
    """The DegradationConfig a stored group was run with, read back from its runs' train configs."""
    blocks = sorted({parse_net(name).blocks for name in group})
    train = next(iter(group.values())).config.train
    return DegradationConfig(
        shallow=blocks[0], deep=blocks[-1], dataset=train.dataset, data_dir=train.data_dir, steps=train.max_steps,
        batch_size=train.batch_size, lr=train.peak_lr, width=train.overrides.get("width", DegradationConfig.width),
        image_size=train.image_size, augment=train.augment != "none", seed=train.seed, log_every=train.log_every,
        probe_every=train.probe_every, test_subset=train.test_subset)


def group_states(group_id: str, names: Iterable[str], jobs: Mapping[str, Job | None],
                 root: str | Path | None = None) -> dict[str, RunState | None]:
    """Each net's state: its job's while this process runs it, else its stored run's; None if neither exists."""
    dirs = run_dirs(group_id, names, root)
    return {name: run_state(jobs.get(name), path) for name, path in dirs.items()}


def group_records(group: Mapping[str, RunInfo]) -> dict[str, list[Record]]:
    return {name: read_metrics(info.path) for name, info in group.items()}


def curves(records: Sequence[Record]) -> dict[str, pd.DataFrame]:
    """train: step, loss, acc (logged windows); test: step, loss, acc (each evaluation)."""
    train = pd.DataFrame([(r.step, r.loss, r.acc) for r in of_kind(records, TrainRecord)],
                         columns=["step", "loss", "acc"])
    test = pd.DataFrame([(r.step, r.test_loss, r.test_acc) for r in of_kind(records, TestRecord)],
                        columns=["step", "loss", "acc"])
    return dict(train=train, test=test)


def final_train_loss(train: pd.DataFrame) -> tuple[float | None, float | None]:
    """Mean logged train loss over the last FINAL_FRACTION of the steps, and its standard error.

    Averaging several logged windows is less noisy than the last window alone; the standard error
    (std of the windows / sqrt(count)) says how much of a gap between two nets is noise.
    """
    if train.empty:
        return None, None
    tail = train[train.step > train.step.max() * (1 - FINAL_FRACTION)].loss
    se = float(tail.std() / math.sqrt(len(tail))) if len(tail) > 1 else None
    return float(tail.mean()), se


def summarize_records(records: Sequence[Record]) -> dict[str, Any]:
    """train_loss (the logged curve), steps, final_train_loss (+ _se), test_loss, test_acc, seconds, status."""
    c = curves(records)
    final: FinalRecord | None = final_of(records)
    test = c["test"]
    final_loss, final_se = final_train_loss(c["train"])
    return dict(train_loss=c["train"].loss.tolist(), steps=c["train"].step.tolist(),
                final_train_loss=final_loss, final_train_loss_se=final_se,
                test_loss=float(test.loss.iloc[-1]) if len(test) else None,
                test_acc=float(test.acc.iloc[-1]) if len(test) else None,
                seconds=final.seconds if final else None, status=final.status if final else None)


def reference_rows() -> list[dict[str, Any]]:
    """He et al. 2015 Table 6: CIFAR-10 test error of the ResNets, with the source, from the presets."""
    rows = [dict(name=p.name, depth=p.spec.depth, test_error=p.reference["test_error"],
                 params=p.reference.get("params_paper"), source=p.reference["source"])
            for p in PRESETS.values() if p.family == "cifar" and p.reference.get("source") == HE2015]
    return sorted(rows, key=lambda r: r["depth"])


# ---------------------------------------------------------------- text from the numbers


def describe(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """For each pair (plain, residual): does the deeper net end with a clearly higher training loss?

    "Clearly" means the gap exceeds both NOISE_SE standard errors of the two final means and
    CLEARLY_HIGHER of the shallower net's loss; everything is read from `summaries`.
    """
    nets = {name: parse_net(name) for name in summaries}
    lines = []
    for skip, kind in ((False, "plain"), (True, "residual")):
        pair = sorted((net.depth, name) for name, net in nets.items() if net.skip == skip)
        if len(pair) != 2:
            continue
        (_, shallow), (_, deep) = pair
        a, b = summaries[shallow].get("final_train_loss"), summaries[deep].get("final_train_loss")
        if a is None or b is None:
            continue
        se = math.hypot(*(summaries[n].get("final_train_loss_se") or 0.0 for n in (shallow, deep)))
        margin = max(NOISE_SE * se, CLEARLY_HIGHER * a)
        gap = b - a
        if gap > margin:
            verdict = f"the deeper {kind} net ends **clearly higher** (+{gap:.3g}) — " + (
                "degradation: more layers, worse fit of the training set." if not skip
                else "the deeper residual net degrades too at this budget.")
        elif gap < -margin:
            verdict = f"the deeper {kind} net ends **clearly lower** ({gap:.3g}) — depth helps here."
        else:
            verdict = (f"**no clear difference**: the gap {gap:+.3g} is within the noise margin {margin:.3g}"
                       + (" — no degradation." if skip else "."))
        lines.append(f"Final train loss (mean over the last {FINAL_FRACTION:.0%} of steps): {shallow} "
                     f"{_loss_text(summaries[shallow])}, {deep} {_loss_text(summaries[deep])}: {verdict}")
    tested = sorted((n for n, s in summaries.items() if s.get("test_acc") is not None),
                    key=lambda n: (nets[n].skip, nets[n].depth))
    if tested:
        lines.append("Test accuracy (last evaluation): "
                     + ", ".join(f"{n} {100 * summaries[n]['test_acc']:.1f}%" for n in tested) + ".")
    return lines


def _loss_text(summary: Mapping[str, Any]) -> str:
    se = summary.get("final_train_loss_se")
    return f"{summary['final_train_loss']:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def newest_deep_pair(runs: Mapping[str, RunInfo]) -> dict[bool, str]:
    """skip -> run id among `runs`: the deep pair of the newest degradation group, else the newest plain and the
    newest residual run."""
    for group in list_groups().values():
        present = {name: info for name, info in group.items() if info.run_id in runs}
        if present:
            depth = max(parse_net(name).depth for name in present)
            return {info.skip: info.run_id for name, info in present.items() if parse_net(name).depth == depth}
    return {r.skip: r.run_id for r in newest_plain_and_residual(runs.values())}
