"""The run store: one folder per training run under `runs/` ($RESNET_EXPLORER_RUNS overrides it).

    runs/<run id>/config.json    a `RunConfig` (contract.py): train config, resolved model spec, data facts
    runs/<run id>/metrics.jsonl  one record per line (training/records.py), appended and flushed
    runs/<run id>/status.json    status, message, final record, owner process; replaced atomically
    runs/<run id>/weights.pt     the final state_dict (load with weights_only=True)
    runs/<run id>/checkpoint.pt  the state to resume from (training/checkpoint.py, resume.py)

A "queued" or "running" folder whose owning process is gone reads as interrupted. A run written from another machine
(a torchrun job on a shared runs folder) cannot have its process checked from here: it reads as interrupted once
neither its status nor its metrics have changed for REMOTE_SILENCE seconds. Its metrics stay
readable: a half-written or invalid line is skipped. Everything read here is validated (see contract.py), and read
only from regular files of a capped size (files.py: a FIFO or a link to /dev/zero in a run folder never blocks).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..data.fence import check_run_data
from ..files import NotRegularFile, open_regular, read_regular
from ..models.provenance import with_spec
from ..models.spec import ModelSpec
from ..models.weights import MAX_STATE_FILE_BYTES, cpu_state_dict
from ..training.records import FinalRecord, R, Record, Status, TestRecord, TrainRecord, parse_status, record_from_dict
from ..training.settings import RunSettings
from ..validation import is_int, shown
from .contract import RunConfig, RunState, new_run_id

RUNS_ENV = "RESNET_EXPLORER_RUNS"
CONFIG, METRICS, STATUS, WEIGHTS = "config.json", "metrics.jsonl", "status.json", "weights.pt"
REMOTE_SILENCE = 900.0  # seconds without news after which another machine's live run reads as interrupted
MAX_JSON_BYTES = 64 * 2**20  # config.json, status.json: a 1000-class confusion matrix is a few MB
MAX_METRICS_BYTES = 2**30  # metrics.jsonl: about 3 million records


def runs_root() -> Path:
    """$RESNET_EXPLORER_RUNS, else ./runs."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser()


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    config: RunConfig
    state: RunState  # from status.json; a live status of a dead process reads as interrupted
    final: FinalRecord | None  # the run's final record once it has one

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def message(self) -> str:
        return self.state.message

    @property
    def created(self) -> float:
        return self.config.created

    @property
    def skip(self) -> bool:
        return self.config.skip

    @property
    def has_weights(self) -> bool:
        return weights_file(self.path) is not None


class RunWriter:
    """Writes one run folder: config first, then records as they come, then weights and status.

    `existing=True` goes on writing a run folder (a resumed run, see resume.py): its config.json is replaced by
    `config`, whose run id and creation time are kept, and records are appended to its metrics."""

    def __init__(self, path: str | Path, config: RunConfig, *, existing: bool = False) -> None:
        if existing:
            self.path, self.run_id, self.config = Path(path), Path(path).name, config
            _write_json(self.path / CONFIG, config.to_dict())
            self._metrics = open(self.path / METRICS, "a", encoding="utf-8")
            self.set_status(Status.QUEUED)
            return
        self.path = check_run_dir(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. no permission
            raise ValueError(f"run_dir must be a folder that can be created; {self.path}: {exc.strerror}") from None
        try:  # claim the folder: of two writers that both passed check_run_dir, only one gets here
            os.close(os.open(self.path / CONFIG, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise ValueError(f"run_dir must be a new or empty folder; {self.path} already holds a run") from None
        self.run_id = self.path.name
        self.config = dataclasses.replace(config, run_id=self.run_id, created=time.time())
        _write_json(self.path / CONFIG, self.config.to_dict())
        self._metrics = open(self.path / METRICS, "a", encoding="utf-8")
        self.set_status(Status.QUEUED)

    def update_settings(self, settings: RunSettings) -> None:
        """config.json with `settings` in place of those the run started with (auto's precision, measured after step
        1: `execute`)."""
        self.config = dataclasses.replace(self.config, settings=settings)
        _write_json(self.path / CONFIG, self.config.to_dict())

    def append(self, record: Record) -> None:
        self._metrics.write(json.dumps(record.to_dict(), allow_nan=True) + "\n")
        self._metrics.flush()

    def set_status(self, status: Status, message: str = "", final: FinalRecord | None = None) -> None:
        write_status(self.path, status, message, final)

    def save_weights(self, model: torch.nn.Module) -> None:
        """The final weights, carrying the model's spec in their module list (models/provenance.py), so that they
        load into no other network; the keys are the model's own."""
        state = cpu_state_dict(model)
        if isinstance(getattr(model, "spec", None), ModelSpec):
            state = with_spec(state, model.spec)
        tmp = self.path / (WEIGHTS + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path / WEIGHTS)

    def close(self) -> None:
        self._metrics.close()


def write_status(path: str | Path, status: Status, message: str = "", final: FinalRecord | None = None) -> None:
    """A run folder's status.json, from this process: what `read_run` reports (a live status while it lives)."""
    _write_json(Path(path) / STATUS, dict(status=status.value, message=message,
                                          final=final.to_dict() if final else None, pid=os.getpid(),
                                          host=socket.gethostname(), proc_start=_process_start(os.getpid()),
                                          updated=time.time()))


def check_run_dir(path: str | Path) -> Path:
    """`path` as a Path, if a run may be written there: a new or empty folder. Nothing already there is ever
    overwritten: a ValueError naming run_dir says what was found (a file, a run, or other files)."""
    path = Path(path)
    nearest = next((p for p in (path, *path.parents) if p.exists()), None)
    if nearest is not None and not nearest.is_dir():
        raise ValueError(f"run_dir must be a folder; {nearest} is a file")
    if path.is_dir():
        found = sorted(child.name for child in itertools.islice(path.iterdir(), 4))
        if (path / CONFIG).exists():
            raise ValueError(f"run_dir must be a new or empty folder; {path} already holds a run")
        if found:
            more = " and more" if len(found) > 3 else ""
            raise ValueError(f"run_dir must be a new or empty folder; {path} holds {', '.join(found[:3])}{more}")
    return path


def create_run(config: RunConfig, run_dir: str | Path | None = None) -> RunWriter:
    """A new run folder: `run_dir` if given, else runs_root()/<new id named after the model>."""
    return RunWriter(Path(run_dir) if run_dir else runs_root() / new_run_id(config.train.model), config)


def read_run(path: str | Path) -> RunInfo:
    """A run folder's config and status, validated; a ValueError says what is wrong with the folder."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise ValueError(f"run_dir must be a run folder holding {CONFIG}; {path} has none")
    where = f"run {path.name}: {CONFIG}"
    raw = _read_json(path / CONFIG, where)
    try:
        config = RunConfig.from_dict(raw)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    where = f"run {path.name}: {STATUS}"
    raw = _read_json(path / STATUS, where) if (path / STATUS).is_file() else {"status": "running"}
    try:
        state, final = _read_status(path, raw)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return RunInfo(path.name, path, config, state, final)


def _read_status(path: Path, raw: Any) -> tuple[RunState, FinalRecord | None]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"must hold a JSON object; got {type(raw).__name__}")
    status, message = parse_status(raw.get("status", "running")), raw.get("message", "")
    if not isinstance(message, str):
        raise ValueError(f"message must be text; got {shown(message)}")
    final = FinalRecord.from_dict(raw["final"]) if raw.get("final") is not None else None
    host = raw.get("host")
    if status.live and isinstance(host, str) and host != socket.gethostname():
        silent = time.time() - max(f.stat().st_mtime for f in (path / STATUS, path / METRICS) if f.is_file())
        if silent > REMOTE_SILENCE:
            status, message = Status.INTERRUPTED, (f"no news from its machine {shown(host)} for "
                                                   f"{silent / 60:.0f} minutes")
    elif status.live and not _owner_alive(raw.get("pid"), raw.get("proc_start")):
        status, message = Status.INTERRUPTED, "the process running it ended before the run finished"
    return RunState(status, message), final


@dataclass(frozen=True)
class SkippedRun:
    """A folder in the run store that could not be read as a run, and why (one line)."""

    name: str
    reason: str


def scan_runs(root: str | Path | None = None) -> tuple[list[RunInfo], list[SkippedRun]]:
    """Every run folder under `root` (default runs_root()), newest first, and the folders that are not valid
    runs with the reason for each: a bad folder is reported, never raised, so it cannot break a listing."""
    root = Path(root) if root else runs_root()
    runs, skipped = [], []
    if root.is_dir():
        for child in root.iterdir():
            try:
                if (child / CONFIG).is_file():
                    runs.append(read_run(child))
            except ValueError as exc:
                skipped.append(SkippedRun(child.name, str(exc)))
            except OSError as exc:
                skipped.append(SkippedRun(child.name, f"run {child.name}: {exc.strerror or exc}"))
    return sorted(runs, key=lambda r: r.created, reverse=True), sorted(skipped, key=lambda s: s.name)


def trained_runs(root: str | Path | None = None) -> tuple[dict[str, RunInfo], list[SkippedRun]]:
    """Finished or stopped runs with weights whose data the server may read again (fence.check_run_data: a
    command-line run may name any folder), by id; the others' reasons join the folders `scan_runs` skipped."""
    stored, skipped = scan_runs(root)
    runs = {}
    for r in stored:
        if r.status not in (Status.FINISHED, Status.STOPPED) or not r.has_weights:
            continue
        try:
            check_run_data(r.config.train.data_dir)
        except ValueError as exc:
            skipped.append(SkippedRun(r.run_id, f"run {r.run_id}: its {exc}"))
        else:
            runs[r.run_id] = r
    return runs, skipped


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """The readable runs of `scan_runs`, newest first."""
    return scan_runs(root)[0]


def newest_plain_and_residual(runs: Iterable[RunInfo]) -> list[RunInfo]:
    """The newest plain run and the newest residual run among `runs` (each if there is one)."""
    runs = sorted(runs, key=lambda r: r.created, reverse=True)
    return [run for skip in (False, True) for run in [next((r for r in runs if r.skip == skip), None)] if run]


def metrics_lines(path: str | Path) -> list[str]:
    """The lines of the run's metrics.jsonl ([] when it has none yet; a bad byte spoils one line); a ValueError
    naming the run when it is not a regular file (NotRegularFile) or is over MAX_METRICS_BYTES."""
    try:
        data = read_regular(Path(path) / METRICS, f"run {Path(path).name}: {METRICS}", MAX_METRICS_BYTES)
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()


def read_metrics(path: str | Path, kind: type[R] | None = None) -> list[Any]:
    """The run's records in order (only those of type `kind` if given); a torn or invalid line is skipped, and so is
    a metrics file that is no regular file (a FIFO there would block the page that reads it)."""
    records = []
    try:
        lines = metrics_lines(path)
    except NotRegularFile:
        return []
    for line in lines:
        try:
            record = record_from_dict(json.loads(line))
        except (ValueError, RecursionError):  # json.JSONDecodeError is a ValueError; [[[[… nests too deep
            continue
        if kind is None or isinstance(record, kind):
            records.append(record)
    return records


def metrics_csv(records: Iterable[Record]) -> str:
    """Train and test records as one CSV table (one row per record, columns = the union of their fields)."""
    return pd.DataFrame([r.to_dict() for r in records if isinstance(r, (TrainRecord, TestRecord))]).to_csv(index=False)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The run's final state_dict, loaded with weights_only=True (no code in the file is ever run); anything
    else, or a file that cannot be read, is one ValueError."""
    name, file = Path(path).name, Path(path) / WEIGHTS
    try:
        opened = open_regular(file, f"run {name}: {WEIGHTS}", MAX_STATE_FILE_BYTES)
    except FileNotFoundError:
        raise ValueError(f"run {name} has no weights yet ({WEIGHTS} is written when the run ends)") from None
    with opened:
        try:
            state = torch.load(opened, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, empty, a pickle of objects, not a torch file: torch's own text may
            # suggest weights_only=False, which would run the file's code, so only the kind of failure is shown
            raise ValueError(f"run {name}: {WEIGHTS} cannot be read as a state_dict of tensors "
                             f"({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"run {name}: {WEIGHTS} holds a {type(state).__name__}, not a state_dict of tensors")
    return state


def weights_file(path: str | Path) -> Path | None:
    """The run's weights file (a torch state_dict), or None before the run has ended."""
    file = Path(path) / WEIGHTS
    return file if file.is_file() else None


def _owner_alive(pid: Any, proc_start: Any) -> bool:
    if not is_int(pid) or pid <= 0:  # kill(0 or -1) would signal a whole group
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: beyond any pid
        return False
    except PermissionError:
        pass
    return proc_start is None or _process_start(pid) in (None, proc_start)


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), so a recycled pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, where: str) -> Any:
    """The file's JSON value; a ValueError starting with `where` for a file that is not a regular file of at most
    MAX_JSON_BYTES, or whose text is not JSON."""
    data = read_regular(path, where, MAX_JSON_BYTES)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{where}: is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ValueError(f"{where}: is nested too deeply to be a run's JSON") from None
