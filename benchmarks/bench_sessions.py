"""Many users at once: K = 1, 4 and 8 concurrent sessions against one real `streamlit run app.py` server.

The client. Each session speaks Streamlit's own websocket protocol to the server (`/_stcore/stream`, the protobuf
BackMsg/ForwardMsg messages a browser exchanges), over one asyncio loop in this process. It is the lightest client
that still makes the server do everything a browser makes it do: one session per connection, every script run in
the server's own script threads, deltas serialized and sent, fragments polled (`auto_rerun`, as a browser's timer
does), sessions disconnected and new ones opened. AppTest was the other candidate and was not used: it runs the
script in the client's process with a mock Runtime that it installs process-wide on every run (so threads of
AppTests overwrite each other's), builds a Python element tree after each run (client work that would be counted
as the app's), never polls fragments, and puts the client's CPU and memory in the same process as the server's,
where they cannot be told apart. Here the server is a separate process, so its CPU and RSS are read from
/proc/PID alone, and the client's own CPU is printed beside them to show it is not the bottleneck.

Script time is the server's: the server is started with `browser.gatherUsageStats` on, which makes it send the
browser a PageProfile after each script run with `exec_time`, the run's duration timed by the server itself (it
sends nothing elsewhere: the statistics are the browser's to send, and this client sends none). The client also
times each request to its `script_finished` message ("latency": what a user waits for, script plus delivery).

The sessions. Each of K users arrives on Home, then cycles through the pages with a few interactions each
(Architecture: block and preset dropdowns; Compare: batch size; Block anatomy: stride; Train: a view, no run;
Signal flow: activation dropdown; Degradation: a view; Home), with a think time drawn uniformly from --think before
each step (during which any fragment the page polls ticks, as in a browser). After each cycle the user leaves (the
websocket closes) and a new one arrives, so sessions come and go as on a shared server.

Reported per K, each figure with the load average of the 2 shared cores beside it: script time per rerun p50/p95
(user-started full runs), latency p50/p95, server CPU per interaction, the server's RSS (start, first minute after
warm-up, last minute) and thread count. Ratios: p95 at K = 8 against K = 1 (goal <= 2), RSS growth = the last
minute's median against the first minute's median after warm-up (goal <= 5%; "after warm-up": once the preset
warm-up is done and every user has finished one cycle; with --minutes under 3 the windows are a third of the run).

Warm-up. Home's first view starts a thread that summarizes every preset (`ui.widgets.preset_family_job`). Before the
K runs, pairs of fresh servers measure the first views of Architecture (a configuration no cache holds), Block
anatomy and Signal flow by a new session: once right after Home's first view (during the warm-up), once after the
warm-up has ended (a session on Compare polls the warm-up's progress, as a browser would). Goal: during/after ~ 1.

Run from the repo root: .venv/bin/python -m benchmarks.bench_sessions [--minutes 10] [--sessions 1,4,8]
[--think 1.5,4.5] [--warmup-pairs 3] [--app-dir DIR] (DIR: another checkout of the app, e.g. to measure a commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

ROOT = Path(__file__).resolve().parent.parent
P95_GOAL, RSS_GOAL = 2.0, 0.05
SAMPLE_SECONDS = 1.0
REQUEST_TIMEOUT = 600.0
WARMUP_TEXT = "Summarizing every preset in the background"
CUSTOM_ARCHITECTURE = "model=resnet50&layers=3,4,7,3"  # a configuration neither a preset nor the warm-up has
FINISHED = ForwardMsg.ScriptFinishedStatus
DONE = {FINISHED.FINISHED_SUCCESSFULLY, FINISHED.FINISHED_WITH_COMPILE_ERROR,
        FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


def load_average() -> float:
    return os.getloadavg()[0]


# ---- the server ---------------------------------------------------------------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    folder: Path  # its runs folder and log, removed with it

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def sample(self) -> tuple[float, int, int]:
        """(CPU seconds used so far, RSS bytes, threads) of the server process, from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return cpu, int(status["VmRSS"].split()[0]) * 1024, int(status["Threads"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app_dir: Path) -> Server:
    """A fresh `streamlit run app.py` (its runs folder a new temporary one), ready to serve."""
    port, folder = free_port(), Path(tempfile.mkdtemp(prefix="bench_sessions_"))
    env = dict(os.environ, RESNET_EXPLORER_RUNS=str(folder / "runs"), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
               str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "true"]
    with open(folder / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, f"127.0.0.1:{port}", folder)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{server.url}/_stcore/health", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server did not start; see {folder / 'server.log'}")


def prepare_data(app_dir: Path) -> None:
    """The synthetic set the Train page loads, generated once per machine before any server is timed."""
    subprocess.run([sys.executable, "-c", "from resnet_core.data.sets import load_dataset; load_dataset('synthetic')"],
                   cwd=app_dir, check=True)


# ---- one session: a browser's side of the protocol -------------------------------------------------------------------

@dataclass
class Run:
    """One request and the script run(s) it caused."""
    label: str
    kind: str  # "view" (a page opened), "change" (a widget changed) or "poll" (a fragment's timer)
    sent: float  # time.monotonic() when the request left
    latency: float = 0.0  # seconds to the script_finished message
    exec_ms: list[float] = field(default_factory=list)  # each full script run's duration, timed by the server
    warming: bool | None = None  # Compare only: did the page show the preset warm-up still running?
    errors: list[str] = field(default_factory=list)


class Session:
    """One browser tab: a websocket, the page it shows, the widgets it changed and the fragments it polls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pages: dict[str, str] = {}  # page name -> page_script_hash (from the navigation message)
        self.page_hash = ""
        self.query = ""
        self.widgets: dict[str, object] = {}  # user key -> the widget's proto, from the last full run
        self.values: dict[str, WidgetState] = {}  # user key -> what this user set on the current page
        self.page = "Home"
        self.polls: dict[str, float] = {}  # fragment id -> seconds between polls
        self.ws = None

    async def open(self) -> None:
        self.ws = await websockets.connect(f"ws://{self.url}/_stcore/stream", subprotocols=["streamlit"],
                                           max_size=None, ping_interval=None)

    async def close(self) -> None:
        await self.ws.close()

    async def view(self, page: str, query: str = "") -> Run:
        """Open `page` ("Home" for the entry page), as a click on the navigation does."""
        self.page, self.query, self.values = page, query, {}
        self.page_hash = self.pages.get("app" if page == "Home" else page, "")
        return await self.send(Run(page, "view", 0.0))

    async def change(self, key: str, state: WidgetState, label: str) -> Run:
        self.values[key] = state
        return await self.send(Run(label, "change", 0.0))

    async def poll(self, fragment_id: str, label: str) -> Run:
        return await self.send(Run(label, "poll", 0.0), fragment_id)

    async def send(self, run: Run, fragment_id: str = "") -> Run:
        message = BackMsg()
        state = message.rerun_script
        state.query_string, state.page_script_hash = self.query, self.page_hash
        if not self.page_hash:  # a session's first request: the browser names the page by its URL path
            state.page_name = "" if self.page == "Home" else self.page.replace(" ", "_")
        state.widget_states.widgets.extend(self.values.values())
        if fragment_id:
            state.fragment_id, state.is_auto_rerun = fragment_id, True
        run.sent = time.monotonic()
        await self.ws.send(message.SerializeToString())
        await asyncio.wait_for(self.receive(run), REQUEST_TIMEOUT)
        run.latency = time.monotonic() - run.sent
        return run

    async def receive(self, run: Run) -> None:
        widgets: dict[str, object] = {}
        full_run = False  # a poll's fragment may end in st.rerun(): a full run, whose widgets count then
        while True:
            message = ForwardMsg()
            message.ParseFromString(await self.ws.recv())
            kind = message.WhichOneof("type")
            if kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                self.element(message.delta.new_element, widgets, run)
            elif kind == "page_profile" and not message.page_profile.is_fragment_run:
                run.exec_ms.append(message.page_profile.exec_time / 1000)
            elif kind == "new_session" and not message.metadata.run.fragment_ids:
                full_run = True
                self.polls.clear()  # a new full run: the browser drops its fragment timers
            elif kind == "auto_rerun":
                self.polls[message.auto_rerun.fragment_id] = message.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fragment_id in message.stop_auto_rerun.fragment_ids:
                    self.polls.pop(fragment_id, None)
            elif kind == "page_info_changed":
                self.query = message.page_info_changed.query_string
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in message.navigation.app_pages}
            elif kind == "script_finished" and message.script_finished in DONE:
                if full_run:
                    self.widgets = widgets
                    self.values = {k: v for k, v in self.values.items() if k in widgets}
                return

    @staticmethod
    def element(element, widgets: dict[str, object], run: Run) -> None:
        kind = element.WhichOneof("type")
        proto = getattr(element, kind)
        widget_id = getattr(proto, "id", "")
        if isinstance(widget_id, str) and widget_id.startswith("$$ID"):
            widgets[widget_id.rsplit("-", 1)[-1]] = proto
        if kind == "exception":
            run.errors.append(f"{proto.type}: {proto.message}")
        if kind == "progress" and proto.text.startswith(WARMUP_TEXT):
            run.warming = True
        elif run.label.startswith("Compare") and run.warming is None:
            run.warming = False


# ---- the users ------------------------------------------------------------------------------------------------------

def current_option(session: Session, key: str) -> str:
    """What a selectbox or radio shows now: what this user picked, else what the server drew it with."""
    if key in session.values:
        return session.values[key].string_value
    proto = session.widgets[key]
    if proto.set_value and proto.HasField("raw_value"):
        return proto.raw_value
    return proto.options[proto.default if proto.HasField("default") else 0]


def pick_option(pick: Callable[[list[str], str], str]) -> Callable[[Session, str], WidgetState]:
    """The state a browser sends for a selectbox or radio set to `pick(options, current)` (formatted options)."""
    def make(session: Session, key: str) -> WidgetState:
        proto = session.widgets[key]
        return WidgetState(id=proto.id, string_value=pick(list(proto.options), current_option(session, key)))
    return make


def next_option(options: list[str], current: str) -> str:
    return options[(options.index(current) + 1) % len(options)] if current in options else options[0]


def toggle_between(first: str, second: str) -> Callable[[list[str], str], str]:
    return lambda options, current: second if current == first else first


def alternate_number(first: int, second: int) -> Callable[[Session, str], WidgetState]:
    """An integer number_input's state, set to `second` if it shows `first` and to `first` otherwise."""
    def make(session: Session, key: str) -> WidgetState:
        proto = session.widgets[key]
        mine = session.values.get(key)
        current = mine.int_value if mine else (proto.value if proto.set_value else proto.default)
        return WidgetState(id=proto.id, int_value=second if current == first else first)
    return make


def change(key: str, make: Callable[[Session, str], WidgetState], label: str) -> Callable[[Session], Awaitable[Run]]:
    async def step(session: Session) -> Run:
        if key not in session.widgets:
            raise RuntimeError(f"{label}: no widget {key!r} on {session.page} (it shows {sorted(session.widgets)})")
        return await session.change(key, make(session, key), label)
    return step


def view(page: str) -> Callable[[Session], Awaitable[Run]]:
    async def step(session: Session) -> Run:
        return await session.view(page)
    return step


CYCLE: list[Callable[[Session], Awaitable[Run]]] = [
    view("Architecture"),
    change("arch_block", pick_option(toggle_between("basic", "bottleneck")), "Architecture: block"),
    change("arch_model", pick_option(next_option), "Architecture: preset"),
    view("Compare"),
    change("cmp_batch", alternate_number(1, 32), "Compare: batch"),
    view("Block anatomy"),
    change("anat_stride", pick_option(toggle_between("1", "2")), "Block anatomy: stride"),
    view("Train"),
    view("Signal flow"),
    change("flow_activation", pick_option(next_option), "Signal flow: activation"),
    view("Degradation"),
    view("Home"),
]


async def think(session: Session, seconds: float, runs: list[Run]) -> None:
    """Wait `seconds` as a reading user does; the page's polling fragments tick meanwhile, as in a browser."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if not session.polls:
            await asyncio.sleep(left)
            return
        fragment_id, every = next(iter(session.polls.items()))
        await asyncio.sleep(min(every, left))
        if time.monotonic() < end:
            runs.append(await session.poll(fragment_id, f"{session.page}: poll"))


async def user(url: str, slot: int, deadline: float, think_range: tuple[float, float], runs: list[Run],
               cycles: list[tuple[int, float]]) -> None:
    """One user slot: a session arrives on Home, cycles through the pages (starting at a slot-dependent step),
    leaves; then the next session arrives, until `deadline`."""
    rng = random.Random(slot)
    await asyncio.sleep(rng.uniform(0, think_range[1]))
    views = [i for i, step in enumerate(CYCLE) if step.__qualname__.startswith("view.")]
    offset = views[slot * 2 % len(views)]  # users start on different pages, each on a page view
    while time.monotonic() < deadline:
        session = Session(url)
        await session.open()
        try:
            runs.append(await session.view("Home"))
            for step in CYCLE[offset:] + CYCLE[:offset]:
                await think(session, rng.uniform(*think_range), runs)
                if time.monotonic() >= deadline:
                    return
                runs.append(await step(session))
            cycles.append((slot, time.monotonic()))
        finally:
            await session.close()


# ---- one K: measuring ---------------------------------------------------------------------------------------------

@dataclass
class Sample:
    at: float
    cpu: float
    rss: int
    threads: int
    load: float


async def sampler(server: Server, samples: list[Sample], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(Sample(time.monotonic(), *server.sample(), load_average()))
        try:
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
        except TimeoutError:
            pass


@dataclass
class Measured:
    k: int
    seconds: float
    runs: list[Run]
    samples: list[Sample]
    cycles: list[tuple[int, float]]  # (user slot, when the cycle ended) for each session's finished visit
    client_cpu: float
    warm_done: float  # first Compare view without the warm-up's bar (monotonic; bounds the warm-up's end)
    every_user_once: float  # when the last user slot finished its first cycle
    warm_at: float  # from when figures count as "after warm-up": the later of the two


async def measure_k(server: Server, k: int, seconds: float, think_range: tuple[float, float]) -> Measured:
    runs: list[Run] = []
    samples: list[Sample] = []
    cycles: list[tuple[int, float]] = []
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler(server, samples, stop))
    cpu, start = time.process_time(), time.monotonic()
    users = [user(server.url, slot, start + seconds, think_range, runs, cycles) for slot in range(k)]
    await asyncio.gather(*users)
    stop.set()
    await sampling
    first_cycles = {slot: min(t for s, t in cycles if s == slot) for slot, _ in cycles}
    every_user_once = max(first_cycles.values()) if len(first_cycles) == k else start
    warm_done = min((r.sent for r in runs if r.warming is False), default=start)
    return Measured(k, time.monotonic() - start, runs, samples, cycles, time.process_time() - cpu, warm_done,
                    every_user_once, max(warm_done, every_user_once))


# ---- warm-up: a page's first view during the preset warm-up and after it --------------------------------------------

FIRST_VIEWS = [("Architecture", CUSTOM_ARCHITECTURE), ("Block anatomy", ""), ("Signal flow", "")]


async def wait_warm_up_done(session: Session) -> tuple[float, int]:
    """Poll Compare's fragment (as its browser does) until the warm-up's progress bar is gone: (seconds, polls)."""
    start, polls = time.monotonic(), 0
    run = await session.view("Compare")
    while run.warming:
        await asyncio.sleep(next(iter(session.polls.values()), 1.0))
        fragment = next(iter(session.polls), None)
        run = await (session.poll(fragment, "Compare") if fragment else session.view("Compare"))
        polls += 1
    return time.monotonic() - start, polls


async def first_views(url: str, during: bool) -> dict[str, float]:
    """Home and Compare in one session (the warm-up starts), then a new session's first view of each page in
    FIRST_VIEWS, right away (`during`) or once the warm-up is done. Returns page -> exec ms (and "warm-up s")."""
    home, other = Session(url), Session(url)
    await home.open()
    await other.open()
    try:
        start = time.monotonic()
        await home.view("Home")
        await home.view("Compare")
        if not during:
            await wait_warm_up_done(home)
        other.pages = home.pages
        times = {}
        for page, query in FIRST_VIEWS:
            run = await other.view(page, query)
            if run.errors:
                raise RuntimeError(f"{page} raised: {run.errors}")
            times[page] = sum(run.exec_ms)
        if during:
            seconds, polls = await wait_warm_up_done(home)
            times["still warming after the views"] = float(polls > 0)
        times["warm-up s"] = time.monotonic() - start
        return times
    finally:
        await home.close()
        await other.close()


def warm_up_pairs(app_dir: Path, pairs: int) -> None:
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    loads: list[float] = []
    for i in range(pairs):
        for during in (True, False) if i % 2 == 0 else (False, True):
            server = start_server(app_dir)
            try:
                loads.append(load_average())
                results[during].append(asyncio.run(first_views(server.url, during)))
                loads.append(load_average())
            finally:
                server.stop()
    print(f"First views by a new session on a fresh server, server script time in ms (median of {pairs}; "
          f"load average {min(loads):.1f}-{max(loads):.1f}):")
    print(f"  {'page':<16} {'during warm-up':>15} {'after it':>9} {'ratio':>6}")
    for page, _ in FIRST_VIEWS:
        during_ms = statistics.median(r[page] for r in results[True])
        after_ms = statistics.median(r[page] for r in results[False])
        print(f"  {page:<16} {during_ms:>15.0f} {after_ms:>9.0f} {during_ms / after_ms:>6.2f}")
    still = sum(r["still warming after the views"] for r in results[True])
    print(f"  the warm-up was still running after the last view in {still:.0f} of {pairs} 'during' rounds; "
          f"Home's view to the warm-up's end: median {statistics.median(r['warm-up s'] for r in results[True]):.1f} s "
          f"with the views, {statistics.median(r['warm-up s'] for r in results[False]):.1f} s without\n")


# ---- report --------------------------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at <= end]


def rss_windows(m: Measured) -> tuple[list[Sample], list[Sample]]:
    """The first window after warm-up and the last one: a minute each, or a third of what is left in short runs."""
    end = m.samples[-1].at
    length = 60.0 if end - m.warm_at >= 180 else (end - m.warm_at) / 3
    return window(m.samples, m.warm_at, m.warm_at + length), window(m.samples, end - length, end)


def phase(m: Measured, start: float, end: float) -> dict[str, float]:
    """The figures of the user-started requests sent in [start, end], and the server's CPU and load meanwhile."""
    runs = [r for r in m.runs if r.kind != "poll" and start <= r.sent <= end]
    exec_ms = [ms for r in runs for ms in r.exec_ms]
    latency = [r.latency * 1000 for r in runs]
    samples = window(m.samples, start, end) or m.samples[-1:]
    loads = [s.load for s in samples]
    return dict(n=len(runs), p50=percentile(exec_ms, 50), p95=percentile(exec_ms, 95),
                lat50=percentile(latency, 50), lat95=percentile(latency, 95),
                cpu=(samples[-1].cpu - samples[0].cpu) / max(len(runs), 1) * 1000,
                load=f"load average {min(loads):.1f}-{max(loads):.1f}, mean {statistics.mean(loads):.1f}",
                load_mean=statistics.mean(loads))


def print_phase(name: str, f: dict[str, float]) -> None:
    print(f"  {name}: {f['n']} interactions ({f['load']})\n"
          f"    script time per rerun (server) p50 {f['p50']:.0f} ms, p95 {f['p95']:.0f} ms; latency p50 "
          f"{f['lat50']:.0f} ms, p95 {f['lat95']:.0f} ms; server CPU per interaction {f['cpu']:.0f} ms")


def print_k(m: Measured) -> dict[str, float]:
    """Print K's figures; returns the steady state's, with the RSS growth."""
    start, end = m.samples[0].at, m.samples[-1].at
    polls = sum(r.kind == "poll" for r in m.runs)
    errors = [r for r in m.runs if r.errors]
    print(f"K = {m.k}: {m.seconds / 60:.1f} min, {len(m.cycles)} finished sessions, {polls} fragment polls, "
          f"{len(errors)} runs with a page error; client CPU {m.client_cpu:.1f} s in all")
    print_phase("whole run", phase(m, start, end))
    steady = phase(m, m.warm_at, end)
    print_phase(f"after warm-up (from {m.warm_at - start:.0f} s: the preset warm-up was seen done at "
                f"{m.warm_done - start:.0f} s, every user had been through one cycle at "
                f"{m.every_user_once - start:.0f} s)", steady)
    first, last = rss_windows(m)
    rss_first, rss_last = (statistics.median(s.rss for s in w) if w else float("nan") for w in (first, last))
    mb = 2**20
    loads = [s.load for s in m.samples]
    print(f"  server RSS: start {m.samples[0].rss / mb:.0f} MB, first window after warm-up {rss_first / mb:.0f} MB, "
          f"last {rss_last / mb:.0f} MB ({(last[-1].at - last[0].at) if last else 0:.0f}-s windows): growth "
          f"{(rss_last / rss_first - 1) * 100:+.1f}%; peak {max(s.rss for s in m.samples) / mb:.0f} MB; threads "
          f"{m.samples[0].threads} -> {max(s.threads for s in m.samples)} at most -> {m.samples[-1].threads} "
          f"(load average {min(loads):.1f}-{max(loads):.1f})")
    minutes = [window(m.samples, start + 60 * i, start + 60 * (i + 1)) for i in range(int((end - start) // 60) + 1)]
    print("  server RSS by minute (median MB): " + " ".join(
        f"{statistics.median(s.rss for s in w) / mb:.0f}" for w in minutes if w))
    by_label: dict[str, list[float]] = {}
    for r in m.runs:
        if r.kind != "poll" and r.sent >= m.warm_at:
            by_label.setdefault(r.label, []).extend(r.exec_ms)
    print("  after warm-up, per step, p50/p95 ms: " + "; ".join(
        f"{label} {percentile(v, 50):.0f}/{percentile(v, 95):.0f}" for label, v in by_label.items() if v))
    for r in errors[:5]:
        print(f"  error on {r.label}: {r.errors[0][:300]}")
    return dict(steady, growth=rss_last / rss_first - 1, rss_first=rss_first, rss_last=rss_last)


def print_ratios(results: dict[int, dict[str, float]]) -> None:
    if 1 in results and 8 in results:
        ratio = results[8]["p95"] / results[1]["p95"]
        print(f"p95 script time after warm-up, K = 8 against K = 1: {ratio:.2f}x (goal <= {P95_GOAL:g}x: "
              f"{'met' if ratio <= P95_GOAL else 'MISSED'}; {results[1]['load']} and {results[8]['load']})")
    for k, s in results.items():
        print(f"RSS growth at K = {k}: {s['growth'] * 100:+.1f}% (goal <= {RSS_GOAL * 100:g}%: "
              f"{'met' if s['growth'] <= RSS_GOAL else 'MISSED'}; {s['load']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each K's run (default 10)")
    parser.add_argument("--sessions", default="1,4,8", help="the K values, comma-separated (default 1,4,8)")
    parser.add_argument("--think", default="1.5,4.5", help="think time range in seconds (default 1.5,4.5)")
    parser.add_argument("--warmup-pairs", type=int, default=3, help="fresh-server pairs for the warm-up (0: skip)")
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout whose app.py is served")
    args = parser.parse_args()
    think_range = tuple(float(x) for x in args.think.split(","))
    print(f"{os.cpu_count()} cores, load average at start {load_average():.1f}; server: {args.app_dir}\n")
    prepare_data(args.app_dir)
    if args.warmup_pairs:
        warm_up_pairs(args.app_dir, args.warmup_pairs)
    results = {}
    for k in (int(x) for x in args.sessions.split(",") if x.strip()):
        server = start_server(args.app_dir)
        try:
            results[k] = print_k(asyncio.run(measure_k(server, k, args.minutes * 60, think_range)))
        finally:
            server.stop()
        print()
    print_ratios(results)


if __name__ == "__main__":
    main()
