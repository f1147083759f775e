"""What a CLI run says when other processes took the cores its threads needed (a real spinning process), and the
rule that note follows, on literal readings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from resnet_core.training.cpu_share import CpuShare, StepClock

ROOT = Path(__file__).resolve().parent.parent


def test_a_busy_core_beside_two_threads_is_named_with_the_thread_count_that_keeps_the_pace():
    note = CpuShare(wall_seconds=10.0, others_seconds=9.3, threads=2, cores=2).note()
    assert note.startswith("other processes used 0.9 of this machine's 2 cores while the training steps ran on 2 "
                           "threads") and note.endswith("--threads 1 keeps more of the pace")


def test_no_note_when_the_threads_had_their_cores():
    assert CpuShare(10.0, 4.0, 2, 2).note() == ""  # 0.4 cores: a browser, a server, not a busy core
    assert CpuShare(10.0, 20.0, 1, 2).note() == ""  # one thread never waits for another
    assert CpuShare(10.0, 40.0, 4, 8).note() == ""  # 4 busy cores beside 4 threads on 8: enough for both
    assert CpuShare(10.0, None, 2, 2).note() == ""  # no /proc/stat: nothing measured, nothing said
    assert CpuShare(0.0, 0.0, 2, 2).others_cores is None  # no step ran


def test_the_step_clock_sums_only_the_time_between_start_and_stop():
    clock = StepClock()
    clock.start()
    sum(range(200_000))
    clock.stop()
    busy = sum(range(2_000_000))  # outside the clock
    reading = clock.reading(threads=2)
    assert busy and 0 < reading.wall_seconds < 0.5 and reading.threads == 2 and reading.cores == os.cpu_count()


def test_a_cli_run_beside_a_spinning_process_says_so_and_how_many_cores_it_took(tmp_path):
    assert (os.cpu_count() or 1) >= 2, "this test needs two cores: the run's two threads and one busy core"
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        out = subprocess.run([sys.executable, "-m", "resnet_core", "train", "resnet20", "--width", "8", "--layers",
                              "1,1,1", "--train-subset", "128", "--steps", "10", "--threads", "2", "--probe-every",
                              "0", "--precision", "fp32", "--json"], cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, RESNET_EXPLORER_RUNS=str(tmp_path)), timeout=300)
    finally:
        spinner.kill()
    assert out.returncode == 0, out.stderr
    final = json.loads(out.stdout.strip().splitlines()[-1])
    assert final["busy_cores"] >= 0.5, final
    assert "while the training steps ran on 2 threads" in final["busy"] and "--threads 1" in final["busy"]
