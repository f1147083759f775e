"""`train`: one training run from the command line, into the run store.

Without --json it shows one line per epoch on stdout and its progress (step/total, loss, images/s, time left): on a
terminal (stdout and stderr both ttys) as a tqdm bar on stderr; piped or logged (nohup, CI, `| tee`) as a
`progress:` line on stdout every PROGRESS_SECONDS or every tenth of the run, whichever comes first. The last line
says what the run's "auto" settings became (budget, precision, augmentation) and why. With --json stdout holds only
JSON: one object per epoch (the test records, see training/records.py) and last a final object with test_acc,
test_loss, images_per_sec, seconds, precision, precision_reason, augment, budget, run_dir, status, init_from,
finetune, trainable_params, world_size and weights_sha256 (one digest per process). A run that diverges or fails
still ends with a final object (status "diverged", "failed", or "interrupted" when another torchrun process was
lost; its message, test figures None, run_dir), then prints its error line and exits 1.

Under torchrun the same command trains data-parallel (training/distributed.py): rank 0 alone prints and writes the run;
an error on any rank is one line naming it. `--resume RUN_DIR` continues a stored run from its checkpoint; when
torchrun restarts its workers (--max-restarts), they go on with the job's run from its checkpoint by themselves
(runs/elastic.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

from tqdm import tqdm

from ..formatting import describe_error, format_seconds
from ..runs.elastic import restart_point
from ..runs.execute import execute
from ..runs.resume import Resume, prepare_resume
from ..runs.store import check_run_dir
from ..runs.transfer import check_init_from, transfer_summary
from ..training.config import TRAIN_OPTIONS, TrainConfig
from ..training.distributed import PeerLost, Replicas, torchrun_label
from ..training.engine import Diverged, FitResult
from ..training.records import Record, Status, TestRecord, TrainRecord
from ..training.settings import precision_warning
from .option_args import add_options, flags, option_values
from .spec_args import add_spec_arguments, spec_overrides

_SKIP_IN_FINAL = ("kind", "confusion", "classes", "step", "epoch", "time")
PROGRESS_SECONDS = 10.0  # piped or logged output: a progress line at least this often (and every tenth of the run)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on a data set and store the run")
    p.add_argument("model", nargs="?", help="a preset name (see `list`); left out with --resume")
    add_spec_arguments(p)
    add_options(p, TRAIN_OPTIONS)
    p.add_argument("--run-dir", help="folder for this run (default: runs/<new id>, or $RESNET_EXPLORER_RUNS/<new id>)")
    p.add_argument("--json", action="store_true", help="JSON lines: one per epoch, then a final object")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over the global batch instead of each process's share")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped, failed or interrupted run from its checkpoint, in its folder, with its "
                        "settings (only --threads, --device and --json may be given with it)")
    p.set_defaults(func=run_train)
    p.set_defaults(resume_defaults=vars(p.parse_args([])))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.model is None:
        raise ValueError("model must be a preset name (see `list`), unless --resume names a run to continue")
    values = option_values(args, TRAIN_OPTIONS)
    return TrainConfig(model=args.model, overrides=spec_overrides(args), **values).validate()


def resumed_config(args: argparse.Namespace, resume: Resume) -> TrainConfig:
    """The stored run's config, on this command's threads and device; any other option is refused."""
    allowed = ("resume", "threads", "device", "json")
    for name, default in args.resume_defaults.items():
        if name not in allowed and getattr(args, name) != default:
            what = "the model" if name == "model" else flags(TRAIN_OPTIONS).get(name, f"--{name.replace('_', '-')}")
            raise ValueError(f"resume continues run {resume.info.run_id} with the settings in its config.json; "
                             f"leave out {what} (only --threads, --device and --json may be given)")
    return resume.info.config.train.replace(threads=args.threads, device=args.device).validate()


def run_train(args: argparse.Namespace) -> int:
    label = torchrun_label()  # "rank 1 of 2" under torchrun: every error line names its process
    try:
        return _run_train(args)
    except BrokenPipeError:
        raise
    except Diverged:
        if label and os.environ.get("RANK") != "0":
            return 1  # the loss is summed over ranks, so every rank diverges at the same step: rank 0 says it
        raise
    except (ValueError, RuntimeError, OSError) as exc:
        if not label:
            raise
        raise (ValueError if isinstance(exc, ValueError) else RuntimeError)(f"{label}: {exc}") from None


def _run_train(args: argparse.Namespace) -> int:
    resume = prepare_resume(args.resume) if args.resume else None
    config = resumed_config(args, resume) if resume else config_from_args(args)
    if config.init_from is not None and resume is None:  # a resumed run's checkpoint holds its weights
        check_init_from(config)  # before the data are loaded
    sync_bn = resume.info.config.distributed.sync_bn if resume else args.sync_bn
    replicas = Replicas.from_env(config.device, sync_bn)
    try:
        if resume is None:
            resume = _restart(args, config, replicas)
        code = _train(args, config.replace(device=replicas.device(config.device)), replicas, resume)
        replicas.barrier()
        return code
    finally:
        replicas.close()


def _restart(args: argparse.Namespace, config: TrainConfig, replicas: Replicas) -> Resume | None:
    """When torchrun has restarted the job's workers (--max-restarts): the job's run, which becomes this command's
    --run-dir, and its checkpoint to go on from (see runs/elastic.py). None on a first start, where a --run-dir
    that holds a run is refused, before the data are loaded (which can take minutes)."""
    restart = restart_point(replicas, args.run_dir, config, args.sync_bn)  # every process of the job calls it
    if restart is None:
        if args.run_dir:
            check_run_dir(args.run_dir)
        return None
    args.run_dir = str(restart.run_dir) if restart.run_dir else None
    return restart.resume


def _train(args: argparse.Namespace, config: TrainConfig, replicas: Replicas, resume: Resume | None) -> int:
    started: dict[str, str] = {}
    stop = threading.Event()
    warning = precision_warning(config)
    if warning and replicas.writes:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    progress = _Progress(enabled=not args.json and replicas.writes,
                         bar=sys.stdout.isatty() and sys.stderr.isatty())

    def on_record(record: Record) -> None:
        progress.update(record)
        if not isinstance(record, TestRecord):
            return
        if args.json:
            print(json.dumps({k: v for k, v in record.to_dict().items() if k != "kind"}), flush=True)
        else:
            progress.write(f"epoch {record.epoch:g}  step {record.step}  train loss {record.train_loss:.4f}  "
                           f"test loss {record.test_loss:.4f}  test acc {record.test_acc:.2%}  "
                           f"{record.images_per_sec:.0f} img/s")

    try:
        with _ctrl_c_sets(stop), contextlib.closing(progress):  # Ctrl-C: "stopped", weights and status saved
            result = execute(config, run_dir=args.run_dir, on_record=on_record, stop=stop,
                             on_start=lambda writer: started.update(path=str(writer.path)),
                             replicas=replicas, resume=resume)
            digests = replicas.digests(result.model)
    except BrokenPipeError:
        raise  # the reader went away (e.g. `| head`); main ends quietly
    except Exception as exc:
        if "path" not in started:  # no run folder yet: main reports the bad argument or missing data
            raise
        status, message = ((Status.DIVERGED, str(exc)) if isinstance(exc, Diverged)
                           else (Status.INTERRUPTED, str(exc)) if isinstance(exc, PeerLost)
                           else (Status.FAILED, describe_error(exc)))
        if args.json:
            print(json.dumps(dict(status=status.value, message=message, test_acc=None, test_loss=None,
                                  images_per_sec=None, seconds=None, run_dir=started["path"])), flush=True)
        raise RuntimeError(f"{message}; run stored in {started['path']}") from None
    if replicas.writes:
        _print_final(args, result, started["path"], replicas, digests, resume)
    return 0


def _print_final(args: argparse.Namespace, result: FitResult, run_dir: str, replicas: Replicas,
                 digests: list[str], resume: Resume | None) -> None:
    """The run's final object (--json) or its summary line."""
    final = {k: v for k, v in result.final.to_dict().items() if k not in _SKIP_IN_FINAL}
    settings, transfer = result.settings, transfer_summary(run_dir)
    budget = settings.budget_reason or f"budget {final['steps']:,} steps"  # a run resumed from before auto budgets
    others = result.cpu.others_cores if result.cpu and not replicas.distributed else None  # ranks share the cores
    busy = result.cpu.note() if others is not None else ""
    final.update(precision=settings.precision, precision_reason=settings.precision_reason, augment=settings.augment,
                 budget=budget, images=settings.images_reason or None, threads=settings.threads,
                 threads_reason=settings.threads_reason or None, run_dir=run_dir,
                 world_size=replicas.world_size, backend=replicas.backend or None, sync_bn=replicas.sync_bn,
                 weights_sha256=digests, resumed_from=resume.state.step if resume else None,
                 init_from=transfer.init_from, finetune=transfer.finetune, trainable_params=transfer.trainable_params,
                 busy_cores=None if others is None else round(others, 2), busy=busy or None)
    if args.json:
        print(json.dumps(final), flush=True)
    else:
        acc = f"{final['test_acc']:.2%}" if final["test_acc"] is not None else "n/a"
        print(f"{final['status']}: test acc {acc} after {final['steps']} steps in {final['seconds']:.1f} s "
              f"({final['images_per_sec']:.0f} img/s); {budget}; precision {settings.precision} "
              f"({settings.precision_reason}); augment {settings.augment} ({settings.augment_reason}); "
              + (f"{settings.images_reason}; " if settings.images_reason else "")
              + (f"threads {settings.threads_reason}; " if settings.threads_reason else "")
              + (f"{busy}; " if busy else "")
              + f"{replicas.world_size} process(es); run stored in {final['run_dir']}")


class _Progress:
    """Progress that follows the train records, from the first step on. On a terminal a tqdm bar on stderr, with
    the epoch lines above it on stdout; otherwise (`bar` False) a `progress:` line on stdout at the first record,
    then whenever PROGRESS_SECONDS have passed or a tenth of the run's steps since the last one, and at the end."""

    def __init__(self, enabled: bool, bar: bool) -> None:
        self.enabled, self.use_bar = enabled, bar
        self.bar: tqdm | None = None
        self.last_time: float | None = None
        self.last_step = 0

    def update(self, record: Record) -> None:
        if not (self.enabled and isinstance(record, TrainRecord)):
            return
        if not self.use_bar:
            self._line(record)
            return
        if self.bar is None:
            self.bar = tqdm(total=record.total_steps, unit="step", file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5, desc="training",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} steps [{elapsed}{postfix}]")
        self.bar.set_postfix_str(f"loss {record.loss:.3f}, {record.images_per_sec:.0f} img/s, "
                                 f"{format_seconds(record.eta_sec)} left", refresh=False)
        self.bar.update(record.step - self.bar.n)

    def _line(self, record: TrainRecord) -> None:
        now = time.monotonic()
        every = max(1, record.total_steps // 10)
        due = (self.last_time is None or now - self.last_time >= PROGRESS_SECONDS
               or record.step - self.last_step >= every or record.step == record.total_steps)
        if not due:
            return
        self.last_time, self.last_step = now, record.step
        print(f"progress: step {record.step}/{record.total_steps}  loss {record.loss:.4f}  "
              f"{record.images_per_sec:.0f} img/s  {format_seconds(record.eta_sec)} left", flush=True)

    def write(self, line: str) -> None:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _ctrl_c_sets(event: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

