"""A run that leaves its threads open takes one less for each core other processes hold as it gets ready: literal
readings, then real runs beside real spinning processes (the CLI, and a stopped run resumed on a quiet machine)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from resnet_core.runs.execute import execute
from resnet_core.runs.resume import prepare_resume
from resnet_core.training.config import TrainConfig
from resnet_core.training.hardware import torch_threads
from resnet_core.training.records import Status, TrainRecord
from resnet_core.training.settings import RunSettings
from resnet_core.training.thread_choice import ThreadChoice, choose_threads

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, train_subset=128, batch_size=32,
            probe_every=0, precision="fp32", log_every=1)


@pytest.mark.parametrize(("default", "cores", "others", "threads"), [
    (2, 2, 0.93, 1),  # a spinning process beside a 2-core run
    (2, 2, 0.1, 2),
    (2, 2, 0.74, 2),  # under 0.75 a core is not held
    (2, 2, 1.9, 1),  # at least one thread
    (8, 8, 1.9, 6),
    (8, 16, 1.0, 8),  # torch's default leaves the logical cores of SMT spare
])
def test_threads_are_torchs_less_the_cores_others_hold(default, cores, others, threads):
    assert choose_threads(default, cores, others).threads == threads


def test_the_reason_gives_the_reading():
    assert choose_threads(2, 2, 0.93).reason == ("auto: 1, not 2: other processes used 0.9 of 2 cores as the run got "
                                                 "ready, and a step waits for a thread that shares its core")
    assert choose_threads(2, 2, 0.04).reason == ("auto: 2, torch's default (other processes used 0.0 of 2 cores as "
                                                 "the run got ready)")
    assert choose_threads(4, 4, None) == ThreadChoice(4, "auto: 4 (torch's default; other processes' load unread here)")


def test_stored_threads_are_checked():
    stored = dict(augment="crop", augment_reason="r", precision="fp32", precision_reason="r", threads=0)
    with pytest.raises(ValueError, match=r"^settings.threads must be an integer from 1 to 1048576; got 0$"):
        RunSettings.from_dict(stored)
    assert RunSettings.from_dict(dict(stored, threads=3, threads_reason="auto")).threads == 3


@functools.cache
def torch_default_threads() -> int:
    """torch's thread count in a fresh process (other test modules set this one's)."""
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


@contextlib.contextmanager
def one_core_held() -> Iterator[int]:
    """Spinning processes holding every logical core torch's default leaves spare, and one more, with this process on
    torch's default count; yields that count."""
    default = torch_default_threads()
    assert default >= 2, "this test needs two cores: one held, one for the run"
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range((os.cpu_count() or 1) - default + 1)]
    try:
        with torch_threads(default):
            yield default
    finally:
        for spinner in spinners:
            spinner.kill()


def test_a_cli_run_beside_a_busy_core_takes_one_thread_less_and_says_why(tmp_path):
    with one_core_held() as default:
        done = subprocess.run([sys.executable, "-m", "resnet_core", "train", "resnet20", "--width", "8", "--layers",
                               "1,1,1", "--train-subset", "128", "--steps", "3", "--probe-every", "0", "--json",
                               "--run-dir", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert 1 <= final["threads"] < default
    assert final["threads_reason"].startswith(f"auto: {final['threads']}, not {default}: other processes used ")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert (stored["threads"], stored["threads_reason"]) == (final["threads"], final["threads_reason"])


def test_a_resumed_run_goes_on_with_the_threads_it_chose(tmp_path):
    stop = threading.Event()

    def stop_after_two(record) -> None:
        if isinstance(record, TrainRecord) and record.step >= 2:
            stop.set()

    with one_core_held() as default:
        first = execute(TrainConfig(max_steps=4, **TINY), run_dir=tmp_path / "run", stop=stop,
                        on_record=stop_after_two)
        assert torch.get_num_threads() == default  # the run's count was its own
    assert first.status == Status.STOPPED and first.settings.threads < default
    with torch_threads(default):
        resumed = execute(TrainConfig(max_steps=4, **TINY), resume=prepare_resume(tmp_path / "run"))  # quiet now
    assert resumed.status == Status.FINISHED and resumed.final.steps == 4
    assert resumed.settings.threads == resumed.cpu.threads == first.settings.threads
