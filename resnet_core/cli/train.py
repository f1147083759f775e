"""`train`: one training run from the command line, into the run store.

Without --json it shows a progress bar on stderr (step/total, loss, images/s, time left) and one line
per epoch on stdout. With --json stdout holds only JSON: one object per epoch (the test records, see
records.py) and last a final object with test_acc, test_loss, images_per_sec, seconds, precision,
augment, run_dir, status, init_from, finetune, trainable_params, world_size and weights_sha256 (one digest per
process). A run that diverges or fails still ends with a final object (status "diverged", "failed", or
"interrupted" when another torchrun process was lost; its message, test figures None, run_dir), then prints its
error line and exits 1.

Under torchrun the same command trains data-parallel (distributed.py): rank 0 alone prints and writes the run;
an error on any rank is one line naming it. `--resume RUN_DIR` continues a stored run from its checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator

from tqdm import tqdm

from ..config import AUGMENTS, FINETUNES, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from ..data import DATASETS
from ..distributed import PeerLost, Replicas, torchrun_label
from ..format import format_seconds
from ..jobs import describe_error, execute
from ..records import Record, Status, TestRecord, TrainRecord
from ..resume import Resume, prepare_resume
from ..runstore import check_run_dir
from ..settings import precision_warning
from ..train import Diverged
from ..transfer import check_init_from, transfer_summary
from .spec_args import add_spec_arguments, number, spec_overrides, whole_number

_SKIP_IN_FINAL = ("kind", "confusion", "classes", "step", "epoch", "time")


def register(sub) -> None:
    defaults = TrainConfig()
    p = sub.add_parser("train", help="train a model on a data set and store the run")
    p.add_argument("model", nargs="?", help="a preset name (see `list`); left out with --resume")
    add_spec_arguments(p)
    p.add_argument("--dataset", default=defaults.dataset, help=f"one of {', '.join(DATASETS)} (default synthetic)")
    p.add_argument("--data-dir", help="where data sets are (or are downloaded to); required for imagefolder")
    p.add_argument("--image-size", type=whole_number("image-size"), help="resize images to this side")
    p.add_argument("--train-subset", type=whole_number("train-subset"), help="train on a seeded subset of N images")
    p.add_argument("--epochs", type=whole_number("epochs"), default=defaults.epochs, help=f"default {defaults.epochs}")
    p.add_argument("--steps", type=whole_number("steps"), help="a step budget instead of epochs")
    p.add_argument("--batch-size", type=whole_number("batch-size"), default=defaults.batch_size)
    p.add_argument("--lr", type=number("lr"), help="peak learning rate (default 0.1 for sgd, 2e-3 for adam/adamw)")
    p.add_argument("--optimizer", default=defaults.optimizer, help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--no-nesterov", action="store_true", help="plain momentum for sgd")
    p.add_argument("--weight-decay", type=number("weight-decay"), default=defaults.weight_decay)
    p.add_argument("--schedule", default=defaults.schedule, help=f"one of {', '.join(SCHEDULES)}")
    p.add_argument("--warmup", type=number("warmup"), default=defaults.warmup, help="fraction of steps warming up")
    p.add_argument("--label-smoothing", type=number("label-smoothing"), default=defaults.label_smoothing)
    p.add_argument("--augment", default=defaults.augment,
                   help=f"one of {', '.join(AUGMENTS)} (default auto: crop, and flip only mirror-invariant sets)")
    p.add_argument("--no-augment", action="store_true", help="the same as --augment none")
    p.add_argument("--precision", default=defaults.precision,
                   help=f"one of {', '.join(PRECISIONS)} (default auto: bf16 where the hardware has it natively)")
    p.add_argument("--no-channels-last", action="store_true", help="run the model in NCHW memory format")
    p.add_argument("--seed", type=whole_number("seed"), default=defaults.seed)
    p.add_argument("--threads", type=whole_number("threads"), help="torch threads (default: all cores)")
    p.add_argument("--device", default=defaults.device, help="cpu, cuda, cuda:N or auto")
    p.add_argument("--probe-every", type=whole_number("probe-every"), default=defaults.probe_every,
                   help="0 turns probes off")
    p.add_argument("--init-from", help="start from a run folder, torchvision[:WEIGHTS] or a state_dict file")
    p.add_argument("--finetune", default=defaults.finetune,
                   help=f"with --init-from, what trains: one of {', '.join(FINETUNES)} (default all)")
    p.add_argument("--backbone-lr-scale", type=number("backbone-lr-scale"), default=defaults.backbone_lr_scale,
                   help="the lr of what is not the classifier, as a fraction of --lr (the tutorials use 0.1)")
    p.add_argument("--run-dir", help="folder for this run (default: runs/<new id>, or $RESNET_EXPLORER_RUNS/<new id>)")
    p.add_argument("--json", action="store_true", help="JSON lines: one per epoch, then a final object")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over the global batch instead of each process's share")
    p.add_argument("--checkpoint-every", type=whole_number("checkpoint-every"), default=defaults.checkpoint_every,
                   help=f"steps between checkpoints, besides each epoch's end and a stop (default "
                        f"{defaults.checkpoint_every})")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped, failed or interrupted run from its checkpoint, in its folder, with its "
                        "settings (only --threads, --device and --json may be given with it)")
    p.set_defaults(func=run_train)
    p.set_defaults(resume_defaults=vars(p.parse_args([])))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.model is None:
        raise ValueError("model must be a preset name (see `list`), unless --resume names a run to continue")
    return TrainConfig(
        model=args.model, overrides=spec_overrides(args), dataset=args.dataset, data_dir=args.data_dir,
        image_size=args.image_size, train_subset=args.train_subset, epochs=args.epochs, max_steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, nesterov=not args.no_nesterov,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup=args.warmup,
        label_smoothing=args.label_smoothing, augment="none" if args.no_augment else args.augment,
        precision=args.precision,
        channels_last=not args.no_channels_last, seed=args.seed, threads=args.threads, device=args.device,
        probe_every=args.probe_every, checkpoint_every=args.checkpoint_every, init_from=args.init_from,
        finetune=args.finetune, backbone_lr_scale=args.backbone_lr_scale,
    ).validate()


def resumed_config(args: argparse.Namespace, resume: Resume) -> TrainConfig:
    """The stored run's config, on this command's threads and device; any other option is refused."""
    allowed = ("resume", "threads", "device", "json")
    for name, default in args.resume_defaults.items():
        if name not in allowed and getattr(args, name) != default:
            what = "the model" if name == "model" else f"--{name.replace('_', '-')}"
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
    if args.run_dir:
        check_run_dir(args.run_dir)  # before the data are loaded, which can take minutes
    if config.init_from is not None and resume is None:  # a resumed run's checkpoint holds its weights
        check_init_from(config)  # before the data are loaded
    sync_bn = resume.info.config.distributed.sync_bn if resume else args.sync_bn
    replicas = Replicas.from_env(config.device, sync_bn)
    try:
        return _train(args, config.replace(device=replicas.device(config.device)), replicas, resume)
    finally:
        replicas.close()


def _train(args: argparse.Namespace, config: TrainConfig, replicas: Replicas, resume: Resume | None) -> int:
    started: dict[str, str] = {}
    stop = threading.Event()
    warning = precision_warning(config)
    if warning and replicas.writes:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    progress = _Progress(enabled=not args.json and replicas.writes)

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
    if not replicas.writes:
        return 0
    final = {k: v for k, v in result.final.to_dict().items() if k not in _SKIP_IN_FINAL}
    settings = result.settings
    final.update(precision=settings.precision, augment=settings.augment, run_dir=started["path"],
                 world_size=replicas.world_size, backend=replicas.backend or None, sync_bn=replicas.sync_bn,
                 weights_sha256=digests, resumed_from=resume.state.step if resume else None,
                 **transfer_summary(started["path"]))
    if args.json:
        print(json.dumps(final), flush=True)
    else:
        acc = f"{final['test_acc']:.2%}" if final["test_acc"] is not None else "n/a"
        print(f"{final['status']}: test acc {acc} after {final['steps']} steps in {final['seconds']:.1f} s "
              f"({final['images_per_sec']:.0f} img/s); precision {settings.precision} "
              f"({settings.precision_reason}); augment {settings.augment} ({settings.augment_reason}); "
              f"{replicas.world_size} process(es); run stored in {final['run_dir']}")
    return 0


class _Progress:
    """A tqdm bar on stderr that follows the train records, from the first step on; epoch lines go above it,
    on stdout. Only on a terminal: piped or logged output gets the epoch lines alone."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def update(self, record: Record) -> None:
        if not (self.enabled and isinstance(record, TrainRecord)):
            return
        if self.bar is None:
            self.bar = tqdm(total=record.total_steps, unit="step", file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5, desc="training", disable=None,  # None: off unless stderr is a tty
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} steps [{elapsed}{postfix}]")
        self.bar.set_postfix_str(f"loss {record.loss:.3f}, {record.images_per_sec:.0f} img/s, "
                                 f"{format_seconds(record.eta_sec)} left", refresh=False)
        self.bar.update(record.step - self.bar.n)

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

