"""Like with like: whether two stored runs were trained alike enough to be compared, and if not, how they differ.

A plain and a residual net compared side by side (a loss landscape, a lesion study, bands over seeds) say something
about the shortcuts only if everything else was the same. Two runs are comparable when their RunConfigs agree on
- the data set: its name, its classes, the number of training images (a train subset is other data), and for an
  image folder the folder;
- the image: its side and channel count, as the model saw it;
- the training budget: the optimizer steps (a budget in epochs counts as epochs × steps per epoch over the run's
  training images) and the batch size (steps × batch is the images seen); for a run stopped early, the steps it
  took (from its final record);
- the precision it trained in (fp32 or bf16, as "auto" resolved: `settings`).
Architecture (depth, shortcuts, width) is what such comparisons vary, so it is not compared here.

`config_differences` lists the differences of two RunConfigs; `run_differences` those of two stored runs (with the
steps they took); `unlike_pairs` those among runs shown together; `default_pair` picks the runs a page shows first
(`newest_matching_pair`), and `no_pair_note` says when no plain and residual pair matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..training.engine import total_steps
from .contract import RunConfig, short_label
from .store import RunInfo


@dataclass(frozen=True)
class Difference:
    """One way two runs differ: what, and the two values as text."""

    what: str  # "image size", "data set", "training steps", "batch size", "precision", …
    first: str
    second: str

    def text(self) -> str:
        """"image size 16×16 vs 32×32"."""
        return f"{self.what} {self.first} vs {self.second}"


def planned_steps(config: RunConfig) -> int:
    """The optimizer steps the run was asked for: its step budget, or its epochs over its training images."""
    return total_steps(config.train, config.data.train_size)


def _budget(config: RunConfig, steps: int | None) -> str:
    planned = planned_steps(config)
    if steps is not None and steps != planned:
        return f"{steps:,} steps (stopped; {planned:,} planned)"
    epochs = "" if config.train.max_steps else f" ({config.train.epochs} epoch{'s' * (config.train.epochs != 1)})"
    return f"{planned:,} steps{epochs}"


def config_differences(a: RunConfig, b: RunConfig,
                       steps: tuple[int | None, int | None] = (None, None)) -> list[Difference]:
    """How runs `a` and `b` differ in data, image, training budget and precision; [] when they are comparable.
    `steps` are the steps each run took, when known (a run stopped early); else its planned steps count."""
    da, db = a.data, b.data
    out = []
    if da.name != db.name:
        out.append(Difference("data set", da.name, db.name))
    elif da.name == "imagefolder" and da.source != db.source:
        out.append(Difference("data folder", da.source, db.source))
    elif list(da.classes) != list(db.classes):
        out.append(Difference("classes", ", ".join(da.classes), ", ".join(db.classes)))
    if da.train_size != db.train_size:
        out.append(Difference("training images", f"{da.train_size:,}", f"{db.train_size:,}"))
    if da.image_size != db.image_size:
        out.append(Difference("image size", f"{da.image_size}×{da.image_size}", f"{db.image_size}×{db.image_size}"))
    if da.channels != db.channels:
        out.append(Difference("channels", str(da.channels), str(db.channels)))
    taken = [s if s is not None else planned_steps(c) for s, c in zip(steps, (a, b))]
    if taken[0] != taken[1]:
        out.append(Difference("training", _budget(a, steps[0]), _budget(b, steps[1])))
    if a.train.batch_size != b.train.batch_size:
        out.append(Difference("batch size", str(a.train.batch_size), str(b.train.batch_size)))
    if a.settings.precision != b.settings.precision:
        out.append(Difference("precision", a.settings.precision, b.settings.precision))
    return out


def steps_taken(info: RunInfo) -> int | None:
    """The steps a run took, from its final record; None before it has one."""
    return info.final.steps if info.final is not None else None


def run_differences(a: RunInfo, b: RunInfo) -> list[Difference]:
    """`config_differences` of two stored runs, with the steps each took."""
    return config_differences(a.config, b.config, (steps_taken(a), steps_taken(b)))


def differences_text(differences: Sequence[Difference]) -> str:
    """"image size 16×16 vs 32×32; training 600 steps vs 100 steps"."""
    return "; ".join(d.text() for d in differences)


def unlike_pairs(runs: Sequence[RunInfo]) -> list[tuple[RunInfo, RunInfo, list[Difference]]]:
    """Each run that differs from the first of `runs`, with how: (first, other, differences)."""
    return [(runs[0], other, found) for other in runs[1:] if (found := run_differences(runs[0], other))]


def unlike_text(pairs: Sequence[tuple[RunInfo, RunInfo, list[Difference]]]) -> str:
    """One sentence per unlike pair: "plain20-ab12 vs resnet20-cd34: image size 16×16 vs 32×32"."""
    return " ".join(f"{short_label(a.run_id)} vs {short_label(b.run_id)}: {differences_text(found)}."
                    for a, b, found in pairs)


def newest_matching_pair(runs: Iterable[RunInfo]) -> tuple[RunInfo, RunInfo] | None:
    """(plain, residual): of the pairs that are comparable, the one whose older run is the newest (then the newer
    run); None when no plain and residual run are comparable."""
    runs = list(runs)
    plain = [r for r in runs if not r.skip]
    residual = [r for r in runs if r.skip]
    pairs = [(p, r) for p in plain for r in residual if not run_differences(p, r)]
    return max(pairs, key=lambda pair: (min(pair[0].created, pair[1].created), max(pair[0].created, pair[1].created),
                                        pair[0].run_id, pair[1].run_id), default=None)


def no_pair_note(runs: Iterable[RunInfo]) -> str | None:
    """A line when plain and residual runs are stored but no pair of them was trained alike: how the newest of each
    differ; None when a pair matches or only one kind is stored."""
    runs = list(runs)
    plain = [r for r in runs if not r.skip]
    residual = [r for r in runs if r.skip]
    if not plain or not residual or newest_matching_pair(runs) is not None:
        return None
    a, b = (max(kind, key=lambda r: r.created) for kind in (plain, residual))
    return (f"No stored plain and residual run were trained alike, so no pair is picked: the newest of each, "
            f"{short_label(a.run_id)} and {short_label(b.run_id)}, differ in "
            f"{differences_text(run_differences(a, b))}. Pick runs yourself; the page says how they differ.")


def default_pair(runs: Iterable[RunInfo], preferred: Sequence[RunInfo] = ()) -> list[RunInfo]:
    """The runs a page picks first: `preferred` (e.g. a degradation group's nets) if it holds both kinds and was
    trained alike; else the newest matching plain and residual pair; else, when only one kind is stored, its
    newest run; else none (`no_pair_note` says why)."""
    runs = list(runs)
    if {r.skip for r in preferred} == {False, True} and not unlike_pairs(list(preferred)):
        return list(preferred)
    matching = newest_matching_pair(runs)
    if matching is not None:
        return list(matching)
    if len({r.skip for r in runs}) == 1:
        return [max(runs, key=lambda r: r.created)]
    return []
