"""Architecture page re-render time after a dropdown change, for several presets and batch sizes.

Each step changes one widget in an AppTest session and times the script run it causes (what the
server does on that change). "first: pick preset" is a preset's first view as a user meets it: the
Home page's background job has warmed every preset's summary by then (the script waits for it).
"first: custom layers" is a configuration no cache has seen (one block more in the last stage),
the worst case. "cached" steps come back to a configuration already shown. The baseline is the Home page's run,
measured in the same process,
so the ratios hold across machines. Target: <= 300 ms for a dropdown change on any preset, at any batch.

Run from the repo root: .venv/bin/python -m benchmarks.bench_app_render [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from resnet_core.introspect.summary import _summarize_spec
from resnet_core.models.presets import PRESETS as ALL
from tests.conftest import wait_until
from ui.widgets import preset_group

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ["resnet18", "resnet50", "resnet152", "wide_resnet101_2", "resnext101_32x8d", "resnet110", "resnet1202"]
BATCHES = [1, 256, 65536]
OPENING_MODEL = "resnet34"  # not in PRESETS, so every "first" step below meets an empty cache
TARGET_MS = 300.0


def timed(action: Callable[[], AppTest]) -> float:
    start = time.perf_counter()
    at = action()
    elapsed = (time.perf_counter() - start) * 1000
    if at.exception:
        raise RuntimeError(f"the page raised: {at.exception[0].message}")
    return elapsed


def baseline_ms(repeats: int) -> float:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    return statistics.median(timed(at.run) for _ in range(repeats))


def wait_for_warm_up() -> float:
    """Seconds until the background job Home started has summarized every preset."""
    start = time.perf_counter()
    distinct = len({preset.spec for preset in ALL.values()})  # twins share a spec (se_resnet50 = seresnet50)
    wait_until(lambda: _summarize_spec.cache_info().currsize >= distinct, timeout=600, interval=0.1,
               message="Home's background job did not summarize every preset")
    return time.perf_counter() - start


def architecture_steps(repeats: int) -> list[tuple[str, int, str, float]]:
    """(preset, batch, step, ms) rows."""
    at = AppTest.from_file(str(ROOT / "pages" / "1_Architecture.py"), default_timeout=600)
    at.query_params["model"] = OPENING_MODEL
    at.run()
    rows = []
    for preset in PRESETS:
        at.selectbox(key="arch_family").set_value(preset_group(preset)).run()  # the preset list is per family
        rows.append((preset, 1, "first: pick preset", timed(at.selectbox(key="arch_model").set_value(preset).run)))
        layers = [int(n) for n in at.text_input(key="arch_layers").value.split(",")]
        custom = ",".join(map(str, layers[:-1] + [layers[-1] + 1]))
        rows.append((preset, 1, "first: custom layers", timed(at.text_input(key="arch_layers").set_value(custom).run)))
        at.text_input(key="arch_layers").set_value(",".join(map(str, layers))).run()
        for batch in BATCHES[1:]:
            set_batch = at.number_input(key="arch_batch").set_value(batch).run
            rows.append((preset, batch, "first: set batch", timed(set_batch)))
        at.number_input(key="arch_batch").set_value(BATCHES[0]).run()
        for batch in BATCHES:
            at.number_input(key="arch_batch").set_value(batch).run()
            cached = []
            for _ in range(repeats):
                block = at.selectbox(key="arch_block")
                original = block.value
                at.selectbox(key="arch_block").set_value("basic" if original != "basic" else "bottleneck").run()
                cached.append(timed(at.selectbox(key="arch_block").set_value(original).run))
            rows.append((preset, batch, "cached: block dropdown back", statistics.median(cached)))
        at.number_input(key="arch_batch").set_value(1).run()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cached step (median)")
    args = parser.parse_args()
    base = baseline_ms(args.repeats)
    print(f"baseline: Home page run {base:.0f} ms (median of {args.repeats})")
    print(f"Home's background warm-up of every preset finished {wait_for_warm_up():.1f} s later\n")
    rows = architecture_steps(args.repeats)
    print(f"{'preset':<18} {'batch':>6}  {'step':<28} {'ms':>7} {'× base':>7}")
    for preset, batch, step, ms in rows:
        print(f"{preset:<18} {batch:>6}  {step:<28} {ms:>7.0f} {ms / base:>7.1f}")
    print()
    for label, prefix in (("cached dropdown change", "cached"), ("first view of a preset", "first: p"),
                          ("batch change on a preset", "first: set"), ("uncached custom layers", "first: custom")):
        ms = [m for *_, step, m in rows if step.startswith(prefix)]
        print(f"{label}: median {statistics.median(ms):.0f} ms, worst {max(ms):.0f} ms ({max(ms) / base:.1f}× base), "
              f"target {TARGET_MS:.0f} ms: {'met' if max(ms) <= TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
