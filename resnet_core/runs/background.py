"""Work a server process shares between its browser sessions: `process_wide` objects (the job runner, tasks that
measure in the background) that outlive re-imports, and `BackgroundRows[Row]`, typed rows computed in a daemon
thread for pages to poll (the thread never calls st.*). `IdlePriority` paces such a thread behind everything else
the process does (script runs, training), for work nobody is waiting for, such as a cache warmed ahead of time.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from ..formatting import describe_error

# Process-wide objects live in a file-less module so they outlive re-imports of this one (streamlit's
# reloader re-imports every project module when any source file changes); running jobs are never orphaned.
_REGISTRY = sys.modules.setdefault("_resnet_explorer_jobs", types.ModuleType("_resnet_explorer_jobs"))
_REGISTRY.__dict__.setdefault("lock", threading.RLock())
_REGISTRY.__dict__.setdefault("objects", {})
_REGISTRY.__dict__.setdefault("live", set())  # the BackgroundRows whose thread is still running


T = TypeVar("T")
Row = TypeVar("Row")


def process_wide(name: str, factory: Callable[[], T]) -> T:
    """The one object of this process named `name`, made by `factory()` on first use (every browser session
    of a streamlit server shares it). A factory that raises leaves nothing behind, so a later call retries."""
    with _REGISTRY.lock:
        if name not in _REGISTRY.objects:
            _REGISTRY.objects[name] = factory()
        return _REGISTRY.objects[name]


def _others_cpu() -> float:
    """CPU seconds used so far by this process's threads other than the calling one (ended threads included)."""
    return time.process_time() - time.thread_time()


class IdlePriority:
    """The pace of a background thread that should run only while the rest of its process is idle.

    `wait()`, called by the thread between two items of work, returns at once if the process's other threads used
    less than `busy_share` of a core while the last item ran; otherwise it sleeps until they have stayed under it for
    `quiet` seconds, or for `max_wait` seconds at most, so that the work still ends under a steady load (taking then
    at most about item / (item + max_wait) of the time). Idleness is measured, not signalled: a script run of any
    session, a training job or another background task all count, and nothing has to report to it. A thread's nice
    value would not do: with the GIL, a Python thread takes turns with the others whatever its priority.
    """

    def __init__(self, busy_share: float = 0.2, quiet: float = 0.2, max_wait: float = 1.0) -> None:
        self.busy_share, self.quiet, self.max_wait = busy_share, quiet, max_wait
        self._mark: tuple[float, float] | None = None  # (monotonic time, others' CPU) when the last item started
        self.waited = 0.0  # seconds spent waiting so far
        self.waits = 0  # items that had to wait

    def _busy_since(self, mark: tuple[float, float]) -> bool:
        elapsed = time.monotonic() - mark[0]
        return elapsed <= 0 or (_others_cpu() - mark[1]) > self.busy_share * elapsed

    def wait(self) -> None:
        """Return when the next item may run (see the class)."""
        start = time.monotonic()
        if self._mark is None or self._busy_since(self._mark):  # the first item checks before it starts
            while time.monotonic() - start < self.max_wait:
                mark = (time.monotonic(), _others_cpu())
                time.sleep(min(self.quiet, max(0.0, self.max_wait - (time.monotonic() - start))))
                if not self._busy_since(mark):
                    break
            self.waits += 1
            self.waited += time.monotonic() - start
        self._mark = (time.monotonic(), _others_cpu())


class BackgroundRows(Generic[Row]):
    """Rows computed one item at a time in a daemon thread, `compute(item)` each; pages poll `snapshot()` (the
    thread never calls st.*). A row is whatever `compute` returns: a dict, or a typed value. With `pace`, the thread
    calls `pace.wait()` before each item (an `IdlePriority`: it yields to the rest of the process).

    At interpreter exit the threads still running are told to stop and joined, so no torch call is cut off mid-way;
    an ended one is forgotten (nothing process-wide keeps its rows once its page lets go of it).
    """

    def __init__(self, compute: Callable[[Any], Row], items: Sequence[Any], pace: IdlePriority | None = None) -> None:
        self.total = len(items)
        self.pace = pace
        self._lock = threading.Lock()
        self._rows: list[Row] = []
        self._error: str | None = None
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(compute, list(items)), daemon=True)
        with _REGISTRY.lock:
            _REGISTRY.live.add(self)
        self._thread.start()

    def _run(self, compute: Callable[[Any], Row], items: list[Any]) -> None:
        try:
            for item in items:
                if self.pace is not None:
                    self.pace.wait()
                if self._stop.is_set():
                    break
                row = compute(item)
                with self._lock:
                    self._rows.append(row)
        except Exception as exc:  # shown on the page instead of dying silently in the thread
            with self._lock:
                self._error = describe_error(exc)
        finally:
            with self._lock:
                self._done = True
            with _REGISTRY.lock:
                _REGISTRY.live.discard(self)

    def cancel(self) -> None:
        """Compute no further rows (the one under way still ends); for work whose answer is no longer wanted."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> tuple[list[Row], bool, str | None]:
        """(rows so far, finished?, error message or None)."""
        with self._lock:
            return list(self._rows), self._done, self._error


def shared_rows(key: Hashable, start: Callable[[], BackgroundRows[Row]], max_age: float = 300.0,
                keep: int = 16) -> BackgroundRows[Row]:
    """The one task of this process for `key`: what `start()` returned the first time any session asked for it, and
    again once that task has ended and is more than `max_age` seconds old (a measurement of the machine goes stale).
    Sessions asking for the same work share its rows; only the `keep` keys asked for last are remembered. A shared
    task is never cancelled for one session: others may be showing it.
    """
    with _REGISTRY.lock:
        tasks = _REGISTRY.__dict__.setdefault("shared", OrderedDict())  # key -> (monotonic time started, task)
        started, task = tasks.get(key, (None, None))
        if task is None or (task.snapshot()[1] and time.monotonic() - started > max_age):
            started, task = time.monotonic(), start()
        tasks[key] = (started, task)
        tasks.move_to_end(key)
        while len(tasks) > keep:
            tasks.popitem(last=False)
        return task


def _stop_live_threads() -> None:
    with _REGISTRY.lock:
        live = list(_REGISTRY.live)
    for task in live:
        task.cancel()
    for task in live:
        task.join()


if not _REGISTRY.__dict__.get("exit_hook"):  # once per process, not once per re-import
    _REGISTRY.exit_hook = atexit.register(_stop_live_threads)
