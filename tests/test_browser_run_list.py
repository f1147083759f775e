"""A real browser on the Train page's run list, with runs written by other processes (the command line): a
finished, a stopped (Ctrl-C), a killed and a still-running run each carry their own status, and "interrupted" is
explained only because one run is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_core.runs import store as runstore
from resnet_core.training.records import Status, TrainRecord
from tests.conftest import ROOT, save_screenshot, wait_for_app, wait_until

TINY = ["resnet20", "--width", "8", "--layers", "1,1,1", "--train-subset", "256",
        "--batch-size", "32", "--threads", "1", "--no-augment", "--json"]


def cli_run(run_dir: Path, steps: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "resnet_core", "train", *TINY, "--steps", str(steps),
                             "--run-dir", str(run_dir)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def training(proc: subprocess.Popen, run_dir: Path) -> bool:
    assert proc.poll() is None, proc.stderr.read().decode()
    return len(runstore.read_metrics(run_dir, kind=TrainRecord)) >= 2


@pytest.mark.browser
def test_each_run_shows_its_own_status(start_server, page, tmp_path):
    url = start_server()  # runs under tmp_path/runs
    runs = tmp_path / "runs"
    finished = cli_run(runs / "a-finished", steps=6)
    stopped, killed, running = (cli_run(runs / name, steps=100_000) for name in ("b-stopped", "c-killed", "d-running"))
    try:
        assert finished.wait(180) == 0, finished.stderr.read().decode()
        for proc, name in ((stopped, "b-stopped"), (killed, "c-killed"), (running, "d-running")):
            wait_until(lambda p=proc, n=name: training(p, runs / n), timeout=180, message=f"{name} did not train")
        stopped.send_signal(signal.SIGINT)  # the CLI's Ctrl-C: stop, evaluate, save
        killed.send_signal(signal.SIGKILL)
        assert stopped.wait(120) == 0 and killed.wait(30) == -signal.SIGKILL
        expected = {"a-finished": Status.FINISHED, "b-stopped": Status.STOPPED, "c-killed": Status.INTERRUPTED,
                    "d-running": Status.RUNNING}
        assert {info.run_id: info.status for info in runstore.list_runs(runs)} == expected

        page.goto(url + "/Train")
        wait_for_app(page, 120_000)
        main = page.locator('[data-testid="stMain"]')
        main.get_by_text("4 run(s) stored on this server").wait_for(timeout=60_000)
        notes = main.get_by_text("4 run(s) stored on this server").inner_text()
        assert "1 interrupted: the process training it ended before the run finished" in notes
        assert "Training now in other processes (the command line, torchrun, another machine): d-running;" in notes
        lines = main.locator('[data-testid="stMarkdown"]').filter(has_text=" · resnet20 on synthetic · ")
        lines = lines.all_inner_texts()
        listed = {line.split(" · ")[0]: line for text in lines for line in text.splitlines()}
        for run_id, status in expected.items():  # the state of each run, drawn apart from the selectors
            info = runstore.read_run(runs / run_id)
            score = f" · test acc {info.final.test_acc:.1%}" if info.final else ""
            state = "running · step " if status == Status.RUNNING else f"{status}{score}"
            assert listed[run_id].startswith(f"{run_id} · resnet20 on synthetic · {state}"), listed
        assert listed["b-stopped"].startswith("b-stopped · resnet20 on synthetic · stopped · test acc ")
        inspect = main.locator('[data-testid="stSelectbox"]').filter(has_text="Inspect a stored run")
        inspect.scroll_into_view_if_needed()
        inspect.locator("input").click()
        page.locator('[role="option"]').nth(len(expected)).wait_for(timeout=30_000)  # "—" and the four runs
        options = page.locator('[role="option"]').all_inner_texts()
        labels = {text.split(" · ")[0]: text for text in options if " · " in text}
        assert set(expected) <= set(labels), options
        assert all(labels[run_id] == f"{run_id} · synthetic" for run_id in expected)  # ids, never a state
        page.keyboard.press("Escape")
        save_screenshot(page, "train-run-list")
    finally:
        for proc in (finished, stopped, killed, running):
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
