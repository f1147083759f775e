"""The training engine: `fit` (one run of a `TrainConfig`) and `evaluate` (test loss, accuracy, confusion).

Data stay uint8 tensors until the batch is cut; augmentation is batched on tensors (see
`data/transforms.py`), the model runs channels_last, and nothing goes through PIL or a DataLoader.

Reproducibility: `seed` fixes the model's initial weights, the train subset, the batch order and
every augmentation draw. Batch order and augmentation come from their own generator, so two runs
with the same data settings and seed see the same batches whatever their models are.

`fit` reports every record through `on_record(record)` (the job runner appends them to the run's
metrics.jsonl): a `TrainRecord` at step 1 and every `log_every` steps, a `TestRecord` at the end of
each epoch (and of a step budget), a `ProbeRecord` every `probe_every` steps, and a `FinalRecord`
last. Their fields are documented in `records.py`.

A run stopped by the user is still evaluated on the test set (once it has taken a step), so it has a
test accuracy and loss; its status stays "stopped".

A NaN, infinite or absurd (> 1e4) loss raises `Diverged` ("diverged at step N ... lower the learning rate").
`stop.set()` ends the run within one block's forward or backward pass; `fit` then returns with status "stopped".

Under torchrun (`replicas`, see distributed.py) every rank runs this loop on its share of each global batch.
`checkpoint(state)` receives the state at step boundaries and `resume=state` goes on from one exactly
(checkpoint.py): a stopped and resumed run ends with the weights of an unbroken one.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.image_data import ImageData
from ..data.sets import prepare
from ..data.transforms import augment, normalize
from ..introspect.hooks import HookSet
from ..models.presets import resolve_spec
from ..models.resnet import ResNet
from ..models.spec import ModelSpec
from .budget import steps_per_epoch, total_steps
from .checkpoint import TrainState
from .config import TrainConfig, resolve_device
from .cpu_share import CpuShare, StepClock
from .distributed import SINGLE, Replicas
from .freeze import freeze, param_groups
from .hardware import torch_threads
from .image_side import crop_pad, train_side
from .probes import Probes
from .records import FinalRecord, ProbeRecord, Record, Status, TestRecord, TrainRecord, of_kind
from .settings import RunSettings, resolve_settings
from .time_left import Plan, Tally, seconds_left

ONECYCLE_WARMUP = 0.25  # one-cycle's rising phase when warmup is 0
ONECYCLE_DIV = 25.0  # one-cycle starts at lr/25 (torch's OneCycleLR default)
DIVERGED_LOSS = 1e4  # a cross-entropy this large (logits 10^4 off) never comes back: treated like NaN


class Diverged(RuntimeError):
    """The loss became NaN, infinite or larger than DIVERGED_LOSS."""

    def __init__(self, step: int, loss: float, lr: float) -> None:
        self.step, self.loss, self.lr = step, loss, lr
        super().__init__(f"diverged at step {step} (loss {loss:.3g}, learning rate {lr:.3g}): "
                         f"lower the learning rate (try {lr / 10:.3g}) or add warmup")


@dataclass
class Evaluation:
    loss: float
    acc: float
    predictions: Tensor  # int64 (M,)
    labels: Tensor  # int64 (M,)
    confusion: Tensor  # int64 (classes, classes); rows = true class, columns = predicted
    seconds: float


@dataclass
class FitResult:
    status: Status  # finished | stopped
    settings: RunSettings  # what the config's "auto" values became
    model: ResNet
    data: ImageData  # the exact (adapted, subset) data the run used
    final: FinalRecord
    records: list[Record]  # every record, in order
    evaluation: Evaluation | None  # the last test evaluation (None if stopped before one)
    cpu: CpuShare | None = None  # the CPU other processes took during this process's training steps (CPU runs)


class _StopRequested(Exception):
    pass


def _sums() -> dict[str, float]:
    return dict(loss=0.0, correct=0, images=0, seconds=0.0)


_SEED_LOCK = threading.Lock()  # torch's global RNG seeds model init; one run at a time may use it


def model_spec(config: TrainConfig, data: ImageData) -> ModelSpec:
    """The config's model spec with num_classes set to the data's class count."""
    return resolve_spec(config.model, **config.overrides).replace(num_classes=data.num_classes)


def load_data(config: TrainConfig) -> ImageData:
    """The exact images a run trains and tests on (adapted to the model's channels and input size)."""
    spec = resolve_spec(config.model, **config.overrides)
    return prepare(config.dataset, config.data_dir, channels=spec.in_channels, image_size=train_side(config),
                   train_subset=config.train_subset, seed=config.seed)


def build_seeded_model(spec: ModelSpec, seed: int, device: str | torch.device = "cpu") -> ResNet:
    with _SEED_LOCK:
        torch.manual_seed(seed)
        model = ResNet(spec)
    return model.to(device)


def resumed_model(config: TrainConfig, data: ImageData, device: str | torch.device = "cpu") -> ResNet:
    """The model a resumed run goes on with: its checkpoint brings the weights, so an `init_from` source is not
    read again; the same parameters are frozen as when the run started."""
    model = build_seeded_model(model_spec(config, data), config.seed, device)
    if config.init_from is not None:
        freeze(model, config.finetune)
    return model


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total`: warmup, then the schedule."""
    peak = config.peak_lr
    warm = config.warmup if config.warmup > 0 or config.schedule != "onecycle" else ONECYCLE_WARMUP
    warm_steps = int(round(warm * total))
    floor = peak / ONECYCLE_DIV if config.schedule == "onecycle" else 0.0
    if step < warm_steps:
        return floor + (peak - floor) * (step + 1) / warm_steps
    progress = (step - warm_steps) / max(1, total - warm_steps)
    if config.schedule in ("cosine", "onecycle"):
        end = floor / 1e4
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "multistep":
        return peak * config.gamma ** sum(step >= m * total for m in config.milestones)
    return peak


@functools.lru_cache(maxsize=1)
def warm_up() -> None:
    """Pay once, ahead of time, what the first run of a process would wait for: torch.optim's first
    optimizer imports torch._dynamo (seconds). The Train page calls this when it loads."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = param_groups(model, config.backbone_lr_scale)  # the trainable ones (freeze.py)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.peak_lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.peak_lr, weight_decay=config.weight_decay)


def fit(config: TrainConfig, *, data: ImageData | None = None, model: ResNet | None = None,
        on_record: Callable[[Record], None] | None = None,
        stop: threading.Event | None = None, settings: RunSettings | None = None, replicas: Replicas = SINGLE,
        resume: TrainState | None = None, checkpoint: Callable[[TrainState], None] | None = None,
        settle: Callable[[], RunSettings] | None = None) -> FitResult:
    """Train one model as `config` says; report every record through `on_record`.

    `data` defaults to `load_data(config)` and `model` to a fresh seeded model of the config's spec; pass either to
    reuse them: a passed model is trained in place. A config with `init_from` needs its model passed, loaded from
    that source (`runs.transfer.initial_model` reads it).
    `stop` is polled inside every block's forward and backward pass. Raises `Diverged` on a NaN/inf loss and
    ValueError on a bad config.
    `replicas`: this process's place in a torchrun job (distributed.py); `resume` goes on from a checkpoint;
    `checkpoint(state)` is called every `config.checkpoint_every` steps, at epoch ends and on a stop.
    `settle()`, if given, is called once step 1's record is out and returns the settings of the steps after it
    (`settings.deferred_settings`: auto's precision, measured after step 1; a stop during it ends the run).
    """
    config.validate()
    device = resolve_device(config.device)
    data = data if data is not None else load_data(config)
    if model is None:
        if config.init_from is not None:
            raise ValueError("init_from: pass the model loaded from it (runs.transfer.initial_model); fit does not "
                             "read weight sources")
        model = build_seeded_model(model_spec(config, data), config.seed, device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    with torch_threads(config.threads):
        settings = settings or resolve_settings(config, data, model, replicas)
        trainer = _Trainer(config, settings, data, model, device, on_record, stop or threading.Event(), replicas,
                           resume, checkpoint)
        trainer.settle = settle
        return trainer.run()


class _Trainer:
    def __init__(self, config: TrainConfig, settings: RunSettings, data: ImageData, model: ResNet,
                 device: torch.device, on_record: Callable[[Record], None] | None, stop: threading.Event,
                 replicas: Replicas, resume: TrainState | None,
                 checkpoint: Callable[[TrainState], None] | None) -> None:
        self.config, self.settings, self.data, self.model, self.device = config, settings, data, model, device
        self.stop = stop
        self.on_record = on_record
        self.records: list[Record] = []
        self.train_x = data.train_images.to(device)
        self.train_y = data.train_labels.to(device)
        self.batch = min(config.batch_size, len(self.train_y))
        replicas.check_batch(self.batch)
        self.replicas, self.checkpoint = replicas, checkpoint
        self.net = replicas.prepare(model)  # what runs forward: the model, or its DistributedDataParallel wrapper
        self.steps_per_epoch = steps_per_epoch(config, len(self.train_y))
        self.total = settings.steps or total_steps(config, len(self.train_y))  # stored: a resumed run keeps its own
        self.optimizer = make_optimizer(config, model)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.probes = Probes(model, config.probe_every if replicas.writes else 0)
        self.evaluation: Evaluation | None = None
        self.tested_at: int | None = None  # the step of the last test evaluation
        self.epoch_sum = _sums()
        self.window = _sums()
        self.order: Tensor | None = None  # the current epoch's batch order
        self.boundary_rng = self.generator.get_state()  # the generator at the last step boundary
        self.boundary_buffers: list[Tensor] = []  # BatchNorm statistics there (a stopped forward moves them)
        self.step = 0
        self.train_seconds = 0.0
        self.step_clock = StepClock()  # this process's steps only (a resumed run's earlier ones are not here)
        self.elapsed_before = 0.0  # wall clock of the run's earlier parts (a resumed run)
        self.eval_seconds: list[float] = []
        self.probe_steps, self.probe_seconds, self.forward_seconds = 0, 0.0, 0.0  # this process's, like `paces`
        self.checkpoints, self.checkpoint_seconds = 0, 0.0
        self.test_batch_seconds: float | None = None  # an evaluation's time, from one test batch timed before it
        self.paces: list[Tally] = []  # at each train record of this process
        self.settle: Callable[[], RunSettings] | None = None
        if resume is not None:
            self._restore(resume)
        self._keep_buffers()

    def emit(self, record: Record) -> None:
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def run(self) -> FitResult:
        self.start = time.perf_counter() - self.elapsed_before
        status = Status.FINISHED
        try:
            with self._stop_hooks():
                while self.step < self.total:
                    self._epoch()
                    self._test()
                    self._checkpoint()
        except _StopRequested:
            status = Status.STOPPED
            with torch.no_grad():  # the model as it was after its last step
                for buffer, kept in zip(self.model.buffers(), self.boundary_buffers):
                    buffer.copy_(kept)
            self._checkpoint()
            if self.step > 0 and self.tested_at != self.step:
                self._test(stoppable=False)  # a stopped run is still measured on the test set
        finally:
            self.probes.close()
            self.model.eval()
        final = self._final(status)
        self.emit(final)
        cpu = self.step_clock.reading(torch.get_num_threads()) if self.device.type == "cpu" else None
        return FitResult(status, self.settings, self.model, self.data, final, self.records, self.evaluation, cpu)

    @contextlib.contextmanager
    def _stop_hooks(self) -> Iterator[None]:
        """Stop is polled before every block's forward pass and at every block's gradient (in one process; ranks
        of a torchrun job agree on stopping once a step, in `step_totals`)."""
        if self.replicas.distributed:
            yield
            return
        with HookSet() as hooks:
            for info in self.model.feature_info:  # closures, not bound methods: `settle` deep-copies the model
                hooks.pre_forward(self.model.block(info), lambda *_: self._check_stop())
                hooks.forward(self.model.block(info), lambda _, __, out: self._check_stop_in_backward(out))
            yield

    def _check_stop(self, *_: Any) -> None:
        if self.stop.is_set():
            raise _StopRequested

    def _check_stop_in_backward(self, out: Tensor) -> None:
        if out.requires_grad:  # a big model's backward can take seconds: look again at every block's gradient
            out.register_hook(self._check_stop)

    def _epoch(self) -> None:
        self.model.train()
        first = self.step % self.steps_per_epoch  # > 0 only when resuming mid-epoch
        if first == 0 or self.order is None:
            self.order = torch.randperm(len(self.train_y), generator=self.generator).to(self.device)
            self.epoch_sum = _sums()
        for i in range(first, self.steps_per_epoch):
            if self.step >= self.total:
                break
            tick = time.perf_counter()
            self.step_clock.start()
            batch = self.order[i * self.batch:(i + 1) * self.batch]
            lr, loss_value, correct, images_seen, probe = self._train_step(batch)
            self.step_clock.stop()
            seconds = time.perf_counter() - tick
            self.train_seconds += seconds
            if probe is not None:
                self.probe_steps, self.probe_seconds = self.probe_steps + 1, self.probe_seconds + seconds
            for acc in (self.window, self.epoch_sum):
                acc["loss"] += loss_value * images_seen
                acc["correct"] += correct
                acc["images"] += images_seen
                acc["seconds"] += seconds
            if self.step == 1 or self.step % self.config.log_every == 0 or self.step == self.total:
                self.emit(self._train_record(self.window, lr))
                self.window.update(_sums())
            if self.settle is not None:
                settle, self.settle = self.settle, None
                self.settings = settle()
            if self.test_batch_seconds is None and not self.eval_seconds and not self.replicas.distributed:
                self._time_test_batch()  # after step 1 and its settle: at the precision the tests will run at
            if probe is not None:
                self.emit(ProbeRecord(**self._where(), **probe))
            last_of_epoch = i == self.steps_per_epoch - 1 or self.step == self.total
            if self.step % self.config.checkpoint_every == 0 and not last_of_epoch:
                self._checkpoint()  # an epoch's last step is checkpointed after its test, in `run`

    def _test_images(self) -> int:
        return min(self.config.test_subset or len(self.data.test_labels), len(self.data.test_labels))

    def _test_batch(self) -> int:
        return max(256, self.config.batch_size)

    def _time_test_batch(self) -> None:
        """An evaluation's time before the first, from one test batch run as `evaluate` runs it (its batch is larger
        than a training step's and keeps nothing for a backward: the steps' forward time priced it up to 2× high)."""
        images = self._test_images()
        batch = min(self._test_batch(), images)
        if batch == 0:
            return
        x = normalize(self.data.test_images[:batch].to(self.device), self.data.mean, self.data.std,
                      self.config.channels_last)
        self.model.eval()
        try:
            tick = time.perf_counter()
            with torch.no_grad(), self._autocast():
                self.model(x)
            self.test_batch_seconds = (time.perf_counter() - tick) * images / batch
        finally:
            self.model.train()

    def _train_step(self, idx: Tensor) -> tuple[float, float, int, int, dict[str, Any] | None]:
        """One optimizer step on the images at `idx`: (lr, mean loss, correct, images, probe values or None), the
        figures summed over a torchrun job's ranks."""
        cfg, replicas = self.config, self.replicas
        images = self.train_x[idx]
        if self.settings.crop:  # the global batch's augmentation, so every rank draws alike
            images = augment(images, self.generator, pad=crop_pad(cfg, self.data.image_size),
                             flip=self.settings.flip)
        x = normalize(replicas.shard(images), self.data.mean, self.data.std, cfg.channels_last)
        y = replicas.shard(self.train_y[idx])
        lr = lr_at(cfg, self.step, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        probing = self.probes.arm(self.step + 1)
        tick = time.perf_counter()
        with self._autocast():
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss_value, correct, images_seen, stop = replicas.step_totals(
            loss, (logits.argmax(1) == y).sum(), len(y), replicas.distributed and self.stop.is_set())
        self.forward_seconds += time.perf_counter() - tick  # step_totals has read the loss: the forward is done
        if stop:
            raise _StopRequested
        if not loss_value < DIVERGED_LOSS:  # also catches NaN
            raise Diverged(self.step + 1, loss_value, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        probe = self.probes.collect() if probing else None
        self.optimizer.step()
        self.step += 1
        self.boundary_rng = self.generator.get_state()
        self._keep_buffers()
        return lr, loss_value, correct, images_seen, probe

    def _keep_buffers(self) -> None:
        self.boundary_buffers = [buffer.detach().clone() for buffer in self.model.buffers()]

    def _checkpoint(self) -> None:
        if self.checkpoint is None or self.order is None:
            return
        tick = time.perf_counter()
        self.checkpoint(TrainState(
            step=self.step, model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            order=self.order.cpu(), generator=self.boundary_rng, epoch_sum=dict(self.epoch_sum),
            window=dict(self.window), tested_at=self.tested_at, train_seconds=self.train_seconds,
            elapsed=time.perf_counter() - self.start, eval_seconds=list(self.eval_seconds)))
        self.checkpoints += 1
        self.checkpoint_seconds += time.perf_counter() - tick

    def _restore(self, state: TrainState) -> None:
        if len(state.order) != len(self.train_y):
            raise ValueError(f"resume: the checkpoint's epoch covers {len(state.order)} training images, the data "
                             f"now hold {len(self.train_y)}; the run's data set has changed")
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.generator.set_state(state.generator)
        self.boundary_rng = state.generator
        self.order = state.order.to(self.device)
        self.step, self.tested_at = state.step, state.tested_at
        self.epoch_sum, self.window = dict(state.epoch_sum), dict(state.window)
        self.train_seconds, self.elapsed_before = state.train_seconds, state.elapsed
        self.eval_seconds = list(state.eval_seconds)

    def _where(self) -> dict[str, Any]:
        return dict(step=self.step, epoch=round(self.step / self.steps_per_epoch, 4),
                    time=round(time.perf_counter() - self.start, 4))

    def _train_record(self, window: dict[str, float], lr: float) -> TrainRecord:
        rate = window["images"] / max(window["seconds"], 1e-9)
        self.paces.append(Tally(self.step, self.train_seconds, self.probe_steps, self.probe_seconds,
                                self.forward_seconds))
        return TrainRecord(**self._where(), images=self.step * self.batch,
                    loss=window["loss"] / window["images"], acc=window["correct"] / window["images"], lr=lr,
                    images_per_sec=rate, eta_sec=self._eta(), total_steps=self.total)

    def _eta(self) -> float:
        """The time left, every part of it priced as this run measured it (time_left.py)."""
        plan = Plan(self.total, self.steps_per_epoch, self.probes.every,
                    self.config.checkpoint_every if self.checkpoint is not None else None, self.batch,
                    self._test_images())
        evaluation = self.eval_seconds[-1] if self.eval_seconds else self.test_batch_seconds
        checkpoint = self.checkpoint_seconds / self.checkpoints if self.checkpoints else None
        return seconds_left(self.paces[:-1], self.paces[-1], plan, evaluation, checkpoint)

    def _test(self, stoppable: bool = True) -> None:
        cfg, replicas = self.config, self.replicas
        if replicas.distributed:
            stoppable = False  # a stop is agreed on between steps, never inside one rank's evaluation
        replicas.sync_buffers(self.model)
        ev = evaluate(self.model, self.data, batch_size=self._test_batch(), precision=self.settings.precision,
                      channels_last=cfg.channels_last, limit=cfg.test_subset, stop=self.stop if stoppable else None,
                      replicas=replicas)
        self.evaluation, self.tested_at = ev, self.step
        self.eval_seconds.append(ev.seconds)
        e = self.epoch_sum
        self.emit(TestRecord(**self._where(), test_loss=ev.loss, test_acc=ev.acc,
                       train_loss=e["loss"] / max(1, e["images"]), train_acc=e["correct"] / max(1, e["images"]),
                       lr=lr_at(cfg, max(0, self.step - 1), self.total),
                       images_per_sec=e["images"] / max(e["seconds"], 1e-9)))

    def _final(self, status: Status) -> FinalRecord:
        ev = self.evaluation
        train = of_kind(self.records, TrainRecord)
        return FinalRecord(status=status, **self._where(), steps=self.step,
                           epochs=round(self.step / self.steps_per_epoch, 4),
                           seconds=round(time.perf_counter() - self.start, 4),
                           images_per_sec=self.step * self.batch / max(self.train_seconds, 1e-9),
                           test_loss=ev.loss if ev else None, test_acc=ev.acc if ev else None,
                           train_loss=train[-1].loss if train else None, classes=list(self.data.classes),
                           confusion=ev.confusion.tolist() if ev else None)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.precision == "bf16")


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, *, split: str = "test", batch_size: int = 500,
             precision: str = "fp32", channels_last: bool = False, limit: int | None = None,
             stop: threading.Event | None = None, replicas: Replicas = SINGLE) -> Evaluation:
    """Loss, accuracy, predictions and confusion matrix of `model` (in eval mode) on a split of `data`.

    Runs on the device of the model's parameters; the model is left in eval mode. In a torchrun job each rank
    evaluates its share of the images and every rank returns the sums over all of them.
    """
    if split not in ("test", "train"):
        raise ValueError(f"split must be test or train; got {split!r}")
    images = data.test_images if split == "test" else data.train_images
    labels = data.test_labels if split == "test" else data.train_labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    share = replicas.test_share(len(labels))
    images, labels = images[share], labels[share]
    device = next(model.parameters()).device
    model.eval()
    tick = time.perf_counter()
    total_loss, predictions = 0.0, []
    for start in range(0, len(labels), batch_size):
        if stop is not None and stop.is_set():
            raise _StopRequested
        x = normalize(images[start:start + batch_size].to(device), data.mean, data.std, channels_last)
        y = labels[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x).float()
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        predictions.append(logits.argmax(1).cpu())
    pred = torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.int64)
    if replicas.distributed:
        total_loss = float(replicas.sum_tensor(torch.tensor([total_loss], dtype=torch.float64, device=device)))
        pred, labels = replicas.gather(pred), replicas.gather(labels)
    k = data.num_classes
    confusion = torch.bincount(labels * k + pred, minlength=k * k).view(k, k)
    n = max(1, len(labels))
    return Evaluation(total_loss / n, float((pred == labels).sum()) / n, pred, labels.clone(), confusion,
                      time.perf_counter() - tick)
