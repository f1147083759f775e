"""What the Lesion page says about the runs around the measurement: which runs to pre-select, how each run's
stored test accuracy compares with the intact accuracy measured now, and when a net is too near chance for a
lesion study to mean anything. Every number comes from the run store or from the lesion measurement."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ..runs.contract import short_label
from ..runs.pairing import default_pair
from ..runs.store import RunInfo
from ..training.records import Status
from .lesion import LesionResult

NEAR_CHANCE = 2.0  # an intact accuracy below this multiple of chance (1 / classes) is "near chance"


def default_choice(runs: Mapping[str, RunInfo], groups: Iterable[Mapping[str, RunInfo]]) -> list[str]:
    """The newest degradation group's nets if it has both a plain and a residual run among `runs`, trained alike
    (runs.pairing); else the newest plain and residual pair trained alike; else the newest run when only one kind
    exists; else none (`pairing.no_pair_note` says why)."""
    for group in groups:
        picks = [info for info in group.values() if info.run_id in runs]
        if {info.skip for info in picks} == {False, True}:
            return [info.run_id for info in default_pair(runs.values(), picks)]
    return [info.run_id for info in default_pair(runs.values())]


def kinds_note(runs: Iterable[RunInfo]) -> str | None:
    """A line when the runs are all plain or all residual: then there is nothing to compare against."""
    kinds = {info.skip for info in runs}
    if kinds == {True}:
        return ("Only residual runs are stored, so there is no plain net to compare with: start the Degradation "
                "runs, or train a plain preset (plain20, plain56, …) on the Train page.")
    if kinds == {False}:
        return ("Only plain runs are stored, so there is no residual net to compare with: start the Degradation "
                "runs, or train a residual preset (resnet20, resnet56, …) on the Train page.")
    return None


def stored_test(info: RunInfo) -> tuple[float, int] | None:
    """The run's own final test accuracy and the number of test images it was measured on (its confusion)."""
    final = info.final
    if final is None or final.test_acc is None or not final.confusion:
        return None
    return final.test_acc, sum(sum(row) for row in final.confusion)


def run_label(info: RunInfo) -> str:
    kind = "residual" if info.skip else "plain"
    stored = stored_test(info)
    return f"{short_label(info.run_id)} · {kind}" + (
        f" · final test acc {stored[0]:.1%} on {stored[1]} images" if stored else "")


def chance(num_classes: int) -> float:
    return 1.0 / num_classes


def chance_warning(name: str, acc: float, num_classes: int, what: str = "intact accuracy") -> str | None:
    """A warning when `acc` (`what`: the intact accuracy measured now, or the run's stored final test) is below
    NEAR_CHANCE × chance: deleting blocks of a net that has learnt next to nothing cannot show which matter."""
    level = chance(num_classes)
    if acc >= NEAR_CHANCE * level:
        return None
    return (f"{name}: {what} {acc:.1%} is near chance ({level:.1%} = 1/{num_classes} classes; below "
            f"{NEAR_CHANCE:g}× chance): this net has learnt too little for its lesion study to mean anything — "
            "train it longer first.")


def compare_with_stored(result: LesionResult, info: RunInfo, choices: Sequence[int] = ()) -> str:
    """The intact accuracy measured now beside the run's own final test, and why they differ when they do;
    `choices` are the test-image counts the page offers (a hint names the run's own count when it is one)."""
    acc, images = result.baseline_acc, result.test_images
    text = f"Intact accuracy measured now: {acc:.1%} on the first {images} test images"
    stored = stored_test(info)
    if stored is None:
        return text + "; the run stored no final test to compare with."
    stored_acc, stored_images = stored
    stop = (f", stopped at step {info.final.steps}" if info.final.status == Status.STOPPED else "")
    text += f"; the run's own final test{stop}: {stored_acc:.1%} on its first {stored_images} test images"
    if images != stored_images:
        se = 100 * math.sqrt(max(acc * (1 - acc), 1e-12) / min(images, stored_images))
        hint = (f"; set “Test images” to {stored_images} to measure on the run's own images"
                if stored_images in choices else "")
        return (text + f". They are measured on different numbers of test images, so they differ by sampling (one "
                f"standard error on {min(images, stored_images)} images is about {se:.1f} points){hint}.")
    if abs(acc - stored_acc) * images < 0.5:  # the same count of correct predictions
        return text + ": the same images, the same accuracy."
    return (text + f". The same images but a different accuracy: this measurement ({acc:.1%}, fp32) and the run's "
            f"final test ({info.config.settings.precision}) did not see the same weights or precision.")
