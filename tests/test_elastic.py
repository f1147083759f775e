"""torchrun as its users run it: two nodes on one machine (c10d rendezvous), and elastic restarts (--max-restarts)
after which the job goes on with its own run from the last checkpoint (runs/elastic.py). Real torchrun processes;
the restart rules also in one process, as a restarted worker of a 1-process job."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from resnet_core.cli import main
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.training.checkpoint import CHECKPOINT, load_checkpoint
from resnet_core.training.config import TrainConfig
from resnet_core.training.distributed import ElasticJob, Replicas, attempt_store, state_digest
from resnet_core.training.records import FinalRecord, Status, TestRecord, TrainRecord
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["resnet20", "--width", "8", "--layers", "1,1,1", "--train-subset", "256", "--batch-size", "32", "--steps", "24",
        "--threads", "1", "--probe-every", "0", "--checkpoint-every", "2", "--json"]
CONFIG = TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, train_subset=256, batch_size=32,
                     max_steps=24, threads=1, probe_every=0, checkpoint_every=2)  # ARGS, for `execute`
EPOCH = 8  # steps an epoch (256 images, batch 32)
TRAIN_STEPS, TEST_STEPS = [1, 5, 10, 15, 20, 24], [8, 16, 24]  # a train record every 5 steps, a test every epoch
TIMEOUT = 240  # seconds for one torchrun job on 2 shared cores (measured: 12 to 50)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(logs: Path, runs: Path, torchrun: list[str], train: list[str]) -> subprocess.Popen:
    """`torchrun TORCHRUN -m resnet_core train TRAIN`, its runs folder `runs`, its output in logs.out and logs.err."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RESNET_EXPLORER_RUNS=str(runs))
    with open(logs.with_suffix(".out"), "w") as out, open(logs.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *torchrun, "-m", "resnet_core",
                                 "train", *train], cwd=ROOT, env=env, stdout=out, stderr=err)


def _node(port: int, rank: int, job: str) -> list[str]:
    """torchrun's arguments for node `rank` of 2 on this machine, one process each, meeting at 127.0.0.1:`port`."""
    return ["--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id={job}"]


def _finish(proc: subprocess.Popen, logs: Path) -> tuple[int, str, str]:
    """Wait for a torchrun job: (exit code, stdout, stderr); a job still running after TIMEOUT is ended."""
    try:
        proc.wait(TIMEOUT)
    finally:
        _end(proc)
    return proc.returncode, logs.with_suffix(".out").read_text(), logs.with_suffix(".err").read_text()


def _end(proc: subprocess.Popen) -> None:
    """End a torchrun agent that is still running, and its workers (torchrun stops them on SIGTERM)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            for pid in _children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()


def _children(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _worker(agent: int, rank: int) -> int | None:
    """The pid of torchrun agent `agent`'s worker process holding RANK=`rank`, once it has started."""
    for pid in _children(agent):
        try:
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return pid
        except OSError:
            continue
    return None


def _final(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> dict:
    """The final JSON of `torchrun --standalone --nproc_per_node=2 … train ARGS`, never interrupted."""
    tmp = tmp_path_factory.mktemp("unbroken")
    code, out, err = _finish(_launch(tmp / "job", tmp / "runs", ["--standalone", "--nproc_per_node=2"], ARGS),
                             tmp / "job")
    assert code == 0, err
    final = _final(out)
    assert final["status"] == "finished" and final["world_size"] == 2 and final["resumed_from"] is None
    assert len(set(final["weights_sha256"])) == 1  # both processes hold the same weights
    return final


def _check_one_clean_run(run_dir: Path, final: dict, unbroken: dict) -> None:
    """`final` is a finished run in `run_dir` whose records hold every step once and whose weights are, bit for bit,
    those of the unbroken job."""
    assert final["status"] == "finished" and final["steps"] == 24 and final["run_dir"] == str(run_dir)
    assert final["weights_sha256"] == unbroken["weights_sha256"]
    assert state_digest(runstore.load_weights(run_dir)) == unbroken["weights_sha256"][0]
    assert runstore.read_run(run_dir).status == Status.FINISHED
    records = runstore.read_metrics(run_dir)
    assert [r.step for r in records if isinstance(r, TrainRecord)] == TRAIN_STEPS  # no gap, no duplicate
    assert [r.step for r in records if isinstance(r, TestRecord)] == TEST_STEPS
    assert [type(r) for r in records].count(FinalRecord) == 1 and isinstance(records[-1], FinalRecord)


def test_two_nodes_on_one_machine_train_one_run_bit_identical_to_a_standalone_job(tmp_path, unbroken):
    """Two torchrun agents (--nnodes=2, one process each) meet at a c10d rendezvous: the same global batch split the
    same way over 2 ranks as --standalone --nproc_per_node=2, so the same weights; global rank 0 alone writes."""
    runs, port = tmp_path / "runs", _free_port()
    agents = [_launch(tmp_path / f"node{r}", runs, _node(port, r, "two-nodes"), ARGS) for r in (0, 1)]
    results = [_finish(agent, tmp_path / f"node{r}") for r, agent in enumerate(agents)]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    printed = [out for _, out, _ in results if out.strip()]
    assert len(printed) == 1  # global rank 0 alone prints (c10d orders the nodes itself: --node_rank is ignored)
    final = _final(printed[0])
    assert final["world_size"] == 2 and final["backend"] == "gloo" and final["resumed_from"] is None
    (run,) = runstore.list_runs(runs)  # one run folder for the two nodes
    assert run.config.distributed.world_size == 2 and run.config.distributed.job == "two-nodes"
    _check_one_clean_run(run.path, final, unbroken)


def test_two_nodes_each_process_names_its_rank_in_its_error_line(tmp_path):
    runs, port = tmp_path / "runs", _free_port()
    args = [a if a != "32" else "33" for a in ARGS]  # --batch-size 33: not a multiple of the 2 processes
    agents = [_launch(tmp_path / f"node{r}", runs, _node(port, r, "odd-batch"), args) for r in (0, 1)]
    lines = []
    for r, agent in enumerate(agents):
        code, _, err = _finish(agent, tmp_path / f"node{r}")
        ours = [line for line in err.splitlines() if line.startswith("error:")]
        assert code != 0 and len(ours) == 1, err  # one line from the node's one process, then torchrun's report
        lines.append(ours[0])
    expected = ("batch_size must be a multiple of the 2 processes (each takes an equal share of the global batch); "
                "got 33")
    (run,) = runstore.list_runs(runs)  # written by rank 0 alone, which marked it failed
    assert run.status == Status.FAILED and run.message == f"ValueError: {expected}"
    assert sorted(lines) == [f"error: rank 0 of 2: ValueError: {expected}; run stored in {run.path}",
                             f"error: rank 1 of 2: {expected}"]


def _mid_epoch_kill(agent: subprocess.Popen, where: Path, victim: int) -> int:
    """SIGKILL worker `victim` while the run's last checkpoint is mid-epoch, and return that checkpoint's step.

    The victim is first stopped (SIGSTOP): rank 0 alone writes checkpoints, and without its peer it blocks in its
    next collective, so the checkpoint on disk settles and is the one the job must go on from. One taken at an
    epoch's end is let go (SIGCONT) and the next one tried."""
    def checkpoint() -> Path | None:
        assert agent.poll() is None, "the job ended before a worker was killed"
        found = list(where.glob(f"*/{CHECKPOINT}"))
        return found[0].parent if found else None

    run_dir = wait_until(checkpoint, timeout=TIMEOUT, interval=0.02, message="no checkpoint from the torchrun job")
    pid = wait_until(lambda: _worker(agent.pid, victim), timeout=10)
    while True:
        os.kill(pid, signal.SIGSTOP)
        try:
            step, seen = -1, load_checkpoint(run_dir).step
            while step != seen:  # settled: the same step half a second later
                time.sleep(0.5)
                step, seen = seen, load_checkpoint(run_dir).step
            assert step < 24, "the run finished before a mid-epoch checkpoint was caught"
        except BaseException:
            os.kill(pid, signal.SIGCONT)
            raise
        if step % EPOCH:
            os.kill(pid, signal.SIGKILL)
            return step
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.03)


@pytest.mark.parametrize("victim, own_dir", [(1, False), (0, True)], ids=["rank1-runs-folder", "rank0-run-dir"])
def test_torchrun_restarts_a_killed_worker_and_the_run_goes_on_from_its_checkpoint(tmp_path, unbroken, victim,
                                                                                   own_dir):
    """kill -9 of one worker mid-epoch under --max-restarts=1: torchrun restarts both, which find the job's run by
    themselves (--run-dir, else the run that records the job's id) and go on from its checkpoint, in its folder:
    every step once, one run folder, the weights of the unbroken job bit for bit."""
    runs = tmp_path / "runs"
    run_dir = tmp_path / "mine"
    agent = _launch(tmp_path / "job", runs, ["--standalone", "--nproc_per_node=2", "--max-restarts=1"],
                    [*ARGS, *(["--run-dir", str(run_dir)] if own_dir else [])])
    try:
        killed_at = _mid_epoch_kill(agent, run_dir.parent if own_dir else runs, victim)
    finally:
        code, out, err = _finish(agent, tmp_path / "job")
    assert code == 0, err
    final = _final(out)
    assert final["resumed_from"] == killed_at and 0 < killed_at < 24 and killed_at % EPOCH
    if not own_dir:
        (run,) = runstore.list_runs(runs)  # the restart went on in the first attempt's folder
        run_dir = run.path
    else:
        assert runstore.list_runs(runs) == []
    _check_one_clean_run(run_dir, final, unbroken)
    survivor = 1 - victim  # its one line, unless torchrun stopped it first
    ours = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(ours) <= 1 and all(line.startswith(f"error: rank {survivor} of 2: another process of this 2-process "
                                                  "job ended") and "torchrun restarts the job" in line
                                  for line in ours), err
    statuses = [json.loads(line).get("status") for line in out.splitlines()]
    assert [s for s in statuses if s] in ([*(["interrupted"] if survivor == 0 else []), "finished"], ["finished"])


@pytest.fixture
def worker(monkeypatch):
    """Make this test process a worker of a 1-process torchrun job: `become(job, restart)` sets torchrun's variables
    (the process group is a real 1-process gloo group on a free port)."""
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                        ("TORCHELASTIC_MAX_RESTARTS", "1")):
        monkeypatch.setenv(name, value)

    def become(job: str, restart: int) -> None:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", job)
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", str(restart))
        monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    return become


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> str:
    """The weights digest of CONFIG trained unbroken in one process."""
    return state_digest(execute(CONFIG, run_dir=tmp_path_factory.mktemp("one") / "run").model)


def _killed_run(run_dir: Path, job: str, checkpoint: bool = True) -> Path:
    """A run of torchrun job `job` as a kill after step 5 leaves it: interrupted, no weights, its checkpoint at step 5
    (or, as before the first checkpoint, none but a half-written one). Made by a stop at step 5."""
    stop = threading.Event()
    execute(CONFIG, run_dir=run_dir, stop=stop, replicas=Replicas(elastic=ElasticJob(job)),
            on_record=lambda r: stop.set() if isinstance(r, TrainRecord) and r.step == 5 else None)
    info = runstore.read_run(run_dir)
    runstore.RunWriter(run_dir, info.config, existing=True).set_status(Status.INTERRUPTED, "killed")
    (run_dir / runstore.WEIGHTS).unlink()  # written at a stop; a killed run has none
    if not checkpoint:
        (run_dir / CHECKPOINT).rename(run_dir / (CHECKPOINT + ".tmp"))
    assert load_checkpoint(run_dir).step == 5 if checkpoint else not (run_dir / CHECKPOINT).exists()
    return run_dir


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_restarted_worker_goes_on_with_its_own_jobs_run_and_nothing_else(tmp_path, capsys, worker, one_process):
    run = _killed_run(tmp_path / "run", "job-a")
    before = _files(run)
    argv = ["train", *ARGS, "--run-dir", str(run)]
    worker("job-a", 0)  # a first start: the folder holds a run, so it is refused, as always
    assert main(argv) == 2
    assert _error(capsys) == f"error: rank 0 of 1: run_dir must be a new or empty folder; {run} already holds a run"
    worker("job-b", 1)  # another job's restart
    assert main(argv) == 2
    assert _error(capsys) == (f"error: rank 0 of 1: run_dir must be a new or empty folder or the run of this torchrun "
                              f"job 'job-b'; {run} holds run run of job 'job-a' (continue it with --resume)")
    worker("job-a", 1)  # the job's restart, with other settings
    assert main([*argv, "--lr", "0.05"]) == 2
    assert _error(capsys) == ("error: rank 0 of 1: run run of this torchrun job was started with another lr; a "
                              "restarted job goes on with its run's own settings (start a new job, or continue it "
                              "with --resume)")
    assert _files(run) == before  # nothing was touched
    assert main(argv) == 0  # the job's restart, the same command
    final = _final(capsys.readouterr().out)
    assert final["resumed_from"] == 5 and final["world_size"] == 1
    _check_one_clean_run(run, final, {"weights_sha256": [one_process]})


def test_a_restarted_worker_finds_its_jobs_run_in_the_runs_folder_or_starts_it_over(tmp_path, capsys, monkeypatch,
                                                                                      worker, one_process):
    runs = tmp_path / "runs"
    monkeypatch.setenv(runstore.RUNS_ENV, str(runs))
    other = _killed_run(runs / "other", "job-x")
    before = _files(other)
    for job, folder in (("job-a", _killed_run(runs / "mine", "job-a")),  # goes on from step 5
                        ("job-c", _killed_run(runs / "early", "job-c", checkpoint=False))):  # starts over
        worker(job, 1)
        assert main(["train", *ARGS]) == 0
        final = _final(capsys.readouterr().out)
        assert final["resumed_from"] == (5 if job == "job-a" else None)
        _check_one_clean_run(folder, final, {"weights_sha256": [one_process]})
        assert sorted(os.listdir(folder)) == sorted(["checkpoint.pt", "config.json", "estimates.json", "metrics.jsonl",
                                                     "status.json", "weights.pt"])
    worker("job-d", 1)  # a restart of a job that had stored nothing yet: a new run
    assert main(["train", *ARGS]) == 0
    final = _final(capsys.readouterr().out)
    assert final["resumed_from"] is None and Path(final["run_dir"]).parent == runs
    assert len(runstore.list_runs(runs)) == 4 and _files(other) == before
    assert runstore.read_run(final["run_dir"]).config.distributed.job == "job-d"


def test_each_attempt_of_a_job_agrees_on_a_fresh_namespace_of_torchruns_shared_store(monkeypatch):
    """torchrun keeps one store for all restarts of a job: an attempt must not read its predecessor's keys, even when
    rank 0 comes first and finds the earlier attempt's requests (answered in vain), or comes last."""
    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    for attempt, first in ((1, 0), (2, 0), (3, 2)):
        stores: dict[int, dist.Store] = {}

        def join(rank: int, stores: dict[int, dist.Store] = stores) -> None:
            stores[rank] = attempt_store(rank, 3)

        order = (first, *sorted({0, 1, 2} - {first}))
        threads = [threading.Thread(target=join, args=(rank,), daemon=True) for rank in order]
        for thread in threads:
            thread.start()
            time.sleep(0.2)  # `first` alone for a while
        for thread in threads:
            thread.join(30)
        assert sorted(stores) == [0, 1, 2]
        assert not any(store.check(["mark"]) for store in stores.values())  # nothing of an earlier attempt
        stores[0].set("mark", str(attempt))
        assert [stores[rank].get("mark") for rank in (1, 2)] == [str(attempt).encode()] * 2
