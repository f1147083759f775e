"""The run store: one folder per training run under `runs/` ($RESNET_EXPLORER_RUNS overrides it).

    runs/<run id>/config.json    TrainConfig, resolved model spec, data facts, creation time
    runs/<run id>/metrics.jsonl  one record per line (keys: see train.py), appended and flushed
    runs/<run id>/status.json    status, pid, message/error, final record; replaced atomically
    runs/<run id>/weights.pt     the final state_dict (load with weights_only=True)

Statuses: queued, running, finished, stopped, diverged, failed — and interrupted, which is what a
"queued" or "running" folder reads as once the process that owned it is gone (killed, crashed,
restarted). Its metrics stay readable: a half-written last line is skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd
import torch

from .data import ImageData
from .model import ResNet
from .spec import ModelSpec
from .train import TrainConfig, load_data

RUNS_ENV = "RESNET_EXPLORER_RUNS"
CONFIG, METRICS, STATUS, WEIGHTS = "config.json", "metrics.jsonl", "status.json", "weights.pt"
LIVE = ("queued", "running")
ENDED = ("finished", "stopped", "diverged", "failed", "interrupted")


def runs_root() -> Path:
    """$RESNET_EXPLORER_RUNS, else ./runs."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser()


def new_run_id(model: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    status: str  # one of LIVE + ENDED
    config: Dict[str, Any]  # what config.json holds (train config under "train", "spec", "data")
    created: float  # epoch seconds
    message: str  # error or stop message ("" when none)
    final: Optional[Dict[str, Any]]  # the run's "final" record once it has one


class RunWriter:
    """Writes one run folder: config first, then records as they come, then weights and status."""

    def __init__(self, path: "str | Path", config: Dict[str, Any]) -> None:
        self.path = check_run_dir(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. no permission
            raise ValueError(f"run_dir must be a folder that can be created; {self.path}: {exc.strerror}") from None
        self.run_id = self.path.name
        _write_json(self.path / CONFIG, dict(config, run_id=self.run_id, created=time.time()))
        self._metrics = open(self.path / METRICS, "a", encoding="utf-8")
        self.set_status("queued")

    def append(self, record: Dict[str, Any]) -> None:
        self._metrics.write(json.dumps(record, allow_nan=True) + "\n")
        self._metrics.flush()

    def set_status(self, status: str, message: str = "", final: Optional[Dict[str, Any]] = None) -> None:
        _write_json(self.path / STATUS, dict(status=status, message=message, final=final, pid=os.getpid(),
                                             proc_start=_process_start(os.getpid()), updated=time.time()))

    def save_weights(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}
        tmp = self.path / (WEIGHTS + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path / WEIGHTS)

    def close(self) -> None:
        self._metrics.close()


def check_run_dir(path: "str | Path") -> Path:
    """`path` as a Path; ValueError naming run_dir if it or a parent is a file, or it already holds a run."""
    path = Path(path)
    nearest = next((p for p in (path, *path.parents) if p.exists()), None)
    if nearest is not None and not nearest.is_dir():
        raise ValueError(f"run_dir must be a folder; {nearest} is a file")
    if (path / METRICS).is_file() and (path / METRICS).stat().st_size > 0:
        raise ValueError(f"run_dir must be a new or empty folder; {path} already holds a run")
    return path


def create_run(config: Dict[str, Any], run_dir: "str | Path | None" = None, model: str = "run") -> RunWriter:
    """A new run folder: `run_dir` if given, else runs_root()/<new id>."""
    return RunWriter(Path(run_dir) if run_dir else runs_root() / new_run_id(model), config)


def read_run(path: "str | Path") -> RunInfo:
    """A run folder's config and status; live statuses of dead processes read as interrupted."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise ValueError(f"run_dir must be a run folder holding {CONFIG}; {path} has none")
    config = _read_json(path / CONFIG) or {}
    status = _read_json(path / STATUS) or dict(status="running")
    state = status.get("status", "running")
    message = status.get("message", "")
    if state in LIVE and not _owner_alive(status.get("pid"), status.get("proc_start")):
        state, message = "interrupted", "the process running it ended before the run finished"
    return RunInfo(path.name, path, state, config, float(config.get("created", 0.0)), message, status.get("final"))


def list_runs(root: "str | Path | None" = None) -> List[RunInfo]:
    """Every run folder under `root` (default runs_root()), newest first; unreadable folders are skipped."""
    root = Path(root) if root else runs_root()
    runs = []
    if root.is_dir():
        for child in root.iterdir():
            if (child / CONFIG).is_file():
                try:
                    runs.append(read_run(child))
                except (ValueError, OSError):
                    continue
    return sorted(runs, key=lambda r: r.created, reverse=True)


def read_metrics(path: "str | Path", kind: Optional[str] = None) -> List[Dict[str, Any]]:
    """The run's records in order (only those of `kind` if given); a torn last line is skipped."""
    records = []
    try:
        text = (Path(path) / METRICS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or record.get("kind") == kind:
            records.append(record)
    return records


def metrics_csv(records: List[Dict[str, Any]]) -> str:
    """Train and test records as one CSV table (one row per record, columns = the union of their keys)."""
    return pd.DataFrame([r for r in records if r.get("kind") in ("train", "test")]).to_csv(index=False)


def load_weights(path: "str | Path") -> Dict[str, torch.Tensor]:
    """The run's final state_dict, loaded with weights_only=True."""
    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise ValueError(f"run {Path(path).name} has no weights yet ({WEIGHTS} is written when the run ends)")
    return torch.load(file, map_location="cpu", weights_only=True)


def load_model(path: "str | Path", device: "str | torch.device" = "cpu") -> ResNet:
    """The run's model with its final weights, in eval mode."""
    spec_fields = dict(read_run(path).config["spec"])
    spec_fields["layers"] = tuple(spec_fields["layers"])
    model = ResNet(ModelSpec(**spec_fields))
    model.load_state_dict(load_weights(path), strict=True)
    return model.to(device).eval()


def load_run_data(path: "str | Path") -> ImageData:
    """The exact train/test images the run used (same data set, size, channels and train subset)."""
    return load_data(TrainConfig.from_dict(read_run(path).config["train"]))


def _owner_alive(pid: Any, proc_start: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return proc_start is None or _process_start(pid) in (None, proc_start)


def _process_start(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), so a recycled pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
