"""Shared fixtures: a fresh streamlit server per test and a real Chromium driven by Playwright; helpers that wait,
and that fail a test instead of hanging with it (`call_within`, `run_cli`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HANG_SECONDS = 60.0  # hostile files (FIFOs, devices): refused at once; this long means a reader blocked


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A job runner of one slot whose runs go to a fresh runs folder; its jobs are stopped after the test."""
    from resnet_core.runs import store
    from resnet_core.runs.runner import JobRunner

    monkeypatch.setenv(store.RUNS_ENV, str(tmp_path / "runs"))
    r = JobRunner(max_concurrent=1)
    yield r
    for job in r.jobs():
        job.stop()
        job.wait(60)


@pytest.fixture(autouse=True, scope="session")
def _session_precision_cache(tmp_path_factory):
    """Measured precision verdicts go to a folder of this test session, never the user's cache: a run shape is
    measured in its first runs of a session. A test that writes verdicts of its own points RESNET_EXPLORER_CACHE at
    its tmp_path (`own_precision_cache`). Session-wide, so that no test's own monkeypatch is set up before it and
    undone after that test's fixtures have ended."""
    before = os.environ.get("RESNET_EXPLORER_CACHE")
    os.environ["RESNET_EXPLORER_CACHE"] = str(tmp_path_factory.getbasetemp() / "precision-cache")
    yield
    if before is None:
        os.environ.pop("RESNET_EXPLORER_CACHE", None)
    else:
        os.environ["RESNET_EXPLORER_CACHE"] = before


@pytest.fixture
def own_precision_cache(tmp_path, monkeypatch):
    """An empty precision cache of this test's own."""
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(tmp_path / "precision-cache"))
    return tmp_path / "precision-cache"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_app(log_dir: Path) -> tuple[str, subprocess.Popen]:
    """`streamlit run app.py` on a fresh port, its runs under log_dir/runs; returns (base URL, process)."""
    port = _free_port()
    env = dict(os.environ, RESNET_EXPLORER_RUNS=str(log_dir / "runs"), PYTHONUNBUFFERED="1")
    log = open(log_dir / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return url, proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"streamlit did not start on {url}; see {log.name}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Start the app on a fresh port (a fresh server each call, runs under tmp_path); yields its base URL."""
    procs = []

    def start() -> str:
        url, proc = serve_app(tmp_path)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        stop_server(proc)


def launch_chromium(playwright):
    """Debian's Chromium, headless, with the flags this offline machine needs."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium driven by Playwright; skips with the reason where Chromium (a system package, not
    a pinned requirement) is missing. Playwright is pinned in requirements-dev.txt: without it the test fails."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def save_screenshot(pg, name: str) -> Path:
    """Screenshots are test artefacts, kept in test-artifacts/ (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.05,
               message: str = "the condition did not hold in time") -> object:
    """Poll `predicate()` every `interval` seconds until it returns something true, and return that; fail the
    test with `message` once `timeout` seconds have passed. An exception from `predicate` fails it at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{message} (waited {timeout:g} s)"
        time.sleep(interval)


def call_within(fn: Callable[..., object], *args: object, fifos: tuple[Path, ...] = (),
                seconds: float = HANG_SECONDS) -> object:
    """`fn(*args)` in a thread: its value, or its exception raised here. Fails the test when it has not returned within
    `seconds` (a reader or writer blocked on one of `fifos` is then let go by opening and closing both its ends, so no
    thread is left hanging)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # raised in the test's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))  # Linux: never blocks, and wakes either side
        pytest.fail(f"still running after {seconds:g} s: a reader blocked")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_cli(*args: str, timeout: float = HANG_SECONDS,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m resnet_core ARGS` in its own process, killed (and the test failed) after `timeout` seconds: for
    input that could hang or fill the memory."""
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "resnet_core", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def rerun_until(at, done, timeout: float = 60.0, interval: float = 0.3):
    """Re-run an AppTest until `done(at)` (run_every never ticks in AppTest); fails on a timeout or an exception."""
    polls = itertools.count()

    def reached() -> bool:
        if next(polls):  # the first poll looks at the page as it is
            at.run()
            assert not at.exception, at.exception
        return done(at)

    wait_until(reached, timeout, interval, message="the page did not reach the expected state in time")
    return at


def wait_for_app(pg, timeout_ms: int = 60000) -> None:
    """Wait until streamlit has finished running the script (streamlit 1.67 marks stApp's script state)."""
    pg.wait_for_selector('[data-testid="stMain"]', timeout=timeout_ms)
    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
