"""The run store: one folder per training run under `runs/` ($RESNET_EXPLORER_RUNS overrides it).

    runs/<run id>/config.json    a `RunConfig` (records.py): train config, resolved model spec, data facts
    runs/<run id>/metrics.jsonl  one record per line (records.py), appended and flushed
    runs/<run id>/status.json    status, message, final record, owner process; replaced atomically
    runs/<run id>/weights.pt     the final state_dict (load with weights_only=True)
    runs/<run id>/checkpoint.pt  the state to resume from (checkpoint.py, resume.py)

A "queued" or "running" folder whose owning process is gone reads as interrupted. A run written from another machine
(a torchrun job on a shared runs folder) cannot have its process checked from here: it reads as interrupted once
neither its status nor its metrics have changed for REMOTE_SILENCE seconds. Its metrics stay
readable: a half-written or invalid line is skipped. Everything read here is validated (see records.py).
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

from .data import ImageData
from .fence import check_run_data
from .model import ResNet
from .records import (
    FinalRecord,
    R,
    Record,
    RunConfig,
    RunState,
    Status,
    TestRecord,
    TrainRecord,
    new_run_id,
    parse_status,
    record_from_dict,
)
from .train import Evaluation, evaluate, load_data
from .validation import is_int, shown

RUNS_ENV = "RESNET_EXPLORER_RUNS"
CONFIG, METRICS, STATUS, WEIGHTS = "config.json", "metrics.jsonl", "status.json", "weights.pt"
REMOTE_SILENCE = 900.0  # seconds without news after which another machine's live run reads as interrupted


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

    def append(self, record: Record) -> None:
        self._metrics.write(json.dumps(record.to_dict(), allow_nan=True) + "\n")
        self._metrics.flush()

    def set_status(self, status: Status, message: str = "", final: FinalRecord | None = None) -> None:
        _write_json(self.path / STATUS, dict(status=status.value, message=message,
                                             final=final.to_dict() if final else None, pid=os.getpid(),
                                             host=socket.gethostname(),
                                             proc_start=_process_start(os.getpid()), updated=time.time()))

    def save_weights(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}
        tmp = self.path / (WEIGHTS + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path / WEIGHTS)

    def close(self) -> None:
        self._metrics.close()


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
    try:
        config = RunConfig.from_dict(_read_json(path / CONFIG))
    except ValueError as exc:
        raise ValueError(f"run {path.name}: {CONFIG}: {exc}") from None
    try:
        state, final = _read_status(path)
    except ValueError as exc:
        raise ValueError(f"run {path.name}: {STATUS}: {exc}") from None
    return RunInfo(path.name, path, config, state, final)


def _read_status(path: Path) -> tuple[RunState, FinalRecord | None]:
    raw = _read_json(path / STATUS) if (path / STATUS).is_file() else {"status": "running"}
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


def read_metrics(path: str | Path, kind: type[R] | None = None) -> list[Any]:
    """The run's records in order (only those of type `kind` if given); a torn or invalid line is skipped."""
    records = []
    try:
        text = (Path(path) / METRICS).read_text(encoding="utf-8", errors="replace")  # a bad byte spoils one line
    except FileNotFoundError:
        return []
    for line in text.splitlines():
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
    if not file.is_file():
        raise ValueError(f"run {name} has no weights yet ({WEIGHTS} is written when the run ends)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, empty, a pickle of objects, not a torch file: torch's own text may
        # suggest weights_only=False, which would run the file's code, so only the kind of failure is shown
        raise ValueError(f"run {name}: {WEIGHTS} cannot be read as a state_dict of tensors "
                         f"({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"run {name}: {WEIGHTS} holds a {type(state).__name__}, not a state_dict of tensors")
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ResNet:
    """The run's model with its final weights, in eval mode; a ValueError when the weights do not fit its spec."""
    info = read_run(path)
    model, state = ResNet(info.config.spec, init_weights=False), load_weights(path)  # every value is loaded below
    expected = model.state_dict()
    for key in sorted(set(expected) | set(state)):
        if key not in state or key not in expected or state[key].shape != expected[key].shape:
            found = tuple(state[key].shape) if key in state else "missing"
            wanted = tuple(expected[key].shape) if key in expected else "no such parameter"
            raise ValueError(f"run {info.run_id}: {WEIGHTS} does not fit its model spec: {key} is {found}, "
                             f"the model has {wanted}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def load_run_data(path: str | Path) -> ImageData:
    """The exact train/test images the run used (same data set, size, channels and train subset)."""
    return load_data(read_run(path).config.train)


def evaluate_run(path: str | Path) -> tuple[Evaluation, ImageData]:
    """The run's final weights evaluated on the test images it was evaluated on, and those data."""
    info, data = read_run(path), load_run_data(path)
    return evaluate(load_model(path), data, limit=info.config.train.test_subset,
                    precision=info.config.settings.precision), data


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


def _read_json(path: Path) -> Any:
    """The file's JSON value; a ValueError for text that is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ValueError("is nested too deeply to be a run's JSON") from None
