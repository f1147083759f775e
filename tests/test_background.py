"""Background rows: a paced task yields to the rest of the process, and an ended task is not kept alive."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from resnet_core.runs import background
from resnet_core.runs.background import BackgroundRows, IdlePriority, shared_rows
from tests.conftest import wait_until


class Spinner:
    """Another thread of this process, busy in Python until stopped (as a session's script run would be)."""

    def __init__(self) -> None:
        self.stop, self.spinning = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self.spinning.wait(10)

    def _spin(self) -> None:
        self.spinning.set()
        while not self.stop.is_set():
            sum(range(1000))

    def end(self) -> None:
        self.stop.set()
        self.thread.join()


def test_a_paced_task_waits_while_another_thread_is_busy_and_goes_on_once_it_is_idle():
    spinner = Spinner()
    computed: list[tuple[int, bool]] = []  # (item, was the spinner still spinning?)
    pace = IdlePriority(busy_share=0.05, max_wait=120)  # long enough never to run out in this test
    task = BackgroundRows(lambda item: computed.append((item, not spinner.stop.is_set())) or item, [1, 2, 3],
                          pace=pace)
    try:
        time.sleep(1.0)  # time for the task to start an item if it were not waiting
        assert task.snapshot()[0] == [] and computed == []
    finally:
        spinner.end()
    wait_until(lambda: task.snapshot()[1], timeout=60)
    rows, done, error = task.snapshot()
    assert rows == [1, 2, 3] and error is None
    assert computed == [(1, False), (2, False), (3, False)]  # every item after the spinner stopped
    assert pace.waits >= 1 and pace.waited > 0


def test_a_task_cancelled_while_it_waits_computes_nothing():
    spinner = Spinner()
    task = BackgroundRows(lambda item: item, [1, 2], pace=IdlePriority(busy_share=0.05, quiet=0.05, max_wait=0.5))
    task.cancel()
    spinner.end()
    wait_until(lambda: task.snapshot()[1], timeout=60)
    assert task.snapshot() == ([], True, None)


def test_an_ended_task_is_forgotten_by_the_process():
    """Only live threads are kept for the exit hook, so a finished task's rows go when its page lets go of it."""
    ref = weakref.ref(BackgroundRows(lambda item: [item] * 1000, range(3)))
    wait_until(lambda: gc.collect() >= 0 and ref() is None, timeout=60,
               message="a finished task was still referenced from somewhere")
    assert all(task.total != 3 for task in background._REGISTRY.live)


def test_sessions_asking_for_the_same_work_share_one_task_until_it_is_stale():
    started: list[str] = []

    def start(name: str):
        return lambda: started.append(name) or BackgroundRows(lambda item: (name, item), [1])

    first = shared_rows(("test", "a"), start("a"))
    assert shared_rows(("test", "a"), start("a again")) is first  # a second session: the same rows
    other = shared_rows(("test", "b"), start("b"))
    assert other is not first and started == ["a", "b"]
    wait_until(lambda: first.snapshot()[1], timeout=60)
    assert first.snapshot()[0] == [("a", 1)]
    assert shared_rows(("test", "a"), start("a, stale"), max_age=0) is not first  # ended and too old: timed anew
    assert started == ["a", "b", "a, stale"]
