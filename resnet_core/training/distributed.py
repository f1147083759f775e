"""Data-parallel training under torchrun: the same `train` command on N processes, one run folder.

`Replicas.from_env(device)` reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK (untrusted, validated), starts
`torch.distributed` (nccl on CUDA, gloo on CPU, as timm's train script chooses) and pins each CUDA rank to its
local GPU. Without torchrun it is `SINGLE`, whose methods change nothing, so `fit` has one code path.

Global batch semantics: `batch_size` is the batch of the whole job. Every rank draws the same seeded order and
the same augmentation of the global batch, then keeps its equal share (`shard`); DistributedDataParallel averages
the gradients, so the update is the single-process update on that batch (up to BatchNorm, which normalises each
rank's share unless `sync_bn`). Loss, accuracy and the stop flag are summed over ranks once per step, so every rank
sees the same numbers and stops or diverges at the same step. Test metrics are summed over ranks' test shards.
A collective that fails because another process of the job ended becomes a `PeerLost`: the run is then marked
interrupted (resumable) rather than failed.

`ElasticJob.from_env()`: torchrun's elastic facts for this worker: the job's id (TORCHELASTIC_RUN_ID: --rdzv-id, a
fresh uuid with --standalone) and how often torchrun has restarted its workers (TORCHELASTIC_RESTART_COUNT) and
may still (--max-restarts); `runs/elastic.py` finds a restarted worker's run with them.

`sync_bn`: torch's nn.SyncBatchNorm on CUDA; on CPU (which nn.SyncBatchNorm refuses) `GlobalBatchNorm2d`, the same
statistics over the global batch through an all_reduce whose backward is an all_reduce (as nn.SyncBatchNorm's).
"""

from __future__ import annotations

import dataclasses
import faulthandler
import hashlib
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..validation import shown
from .freeze import keep_frozen_norms_in_eval

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# How a collective fails when another process of the job has ended: gloo raises a plain RuntimeError naming its
# transport (seen here); torch's own DistError types are taken as such too.
PEER_SIGNS = ("/gloo/transport/", "Connection reset by peer", "Connection closed by peer", "Broken pipe")


@dataclass(frozen=True)
class ElasticJob:
    """The torchrun job around this worker: its id, the restart this worker belongs to (0: the first start) and
    the most torchrun allows (--max-restarts)."""

    run_id: str
    restart: int = 0
    max_restarts: int = 0

    @property
    def restarted(self) -> bool:
        return self.restart > 0

    @property
    def restarts_left(self) -> int:
        return max(0, self.max_restarts - self.restart)

    @classmethod
    def from_env(cls) -> ElasticJob | None:
        """None unless torchrun started this process; a bad variable is one ValueError naming it."""
        run_id = os.environ.get("TORCHELASTIC_RUN_ID")
        if run_id is None:
            return None
        if not (0 < len(run_id) <= MAX_JOB_ID and run_id.isprintable()):
            raise ValueError(f"TORCHELASTIC_RUN_ID must be printable text of 1 to {MAX_JOB_ID} characters set by "
                             f"torchrun (its --rdzv-id); got {shown(run_id)}")
        counts = []
        for name in ("TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS"):
            text = os.environ.get(name, "0")
            if not text.strip().isdigit():
                raise ValueError(f"{name} must be a whole number >= 0 set by torchrun; got {shown(text)}")
            counts.append(int(text))
        return cls(run_id, *counts)


MAX_JOB_ID = 200  # characters of a torchrun job id (TORCHELASTIC_RUN_ID) kept with a run


class PeerLost(RuntimeError):
    """A collective failed because another process of the job ended (killed, crashed or failed): the run is
    interrupted, not failed, and can go on with --resume."""


@dataclass(frozen=True)
class Replicas:
    """This process's place in a data-parallel job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""  # gloo | nccl; "" for one process
    sync_bn: bool = False  # BatchNorm statistics over the global batch
    elastic: ElasticJob | None = None  # the torchrun job (None without torchrun)

    @property
    def job(self) -> str:
        """The torchrun job's id, "" without torchrun."""
        return self.elastic.run_id if self.elastic else ""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writes(self) -> bool:
        """Rank 0 alone writes the run store and the output."""
        return self.rank == 0

    @property
    def label(self) -> str:
        return f"rank {self.rank} of {self.world_size}"

    @classmethod
    def from_env(cls, device: str, sync_bn: bool = False) -> Replicas:
        """This process's replica: SINGLE (with `sync_bn`) unless torchrun started it; then the process group is
        initialised here (gloo, or nccl when `device` is CUDA). A bad torchrun variable is one ValueError."""
        if not is_torchrun_worker():
            return dataclasses.replace(SINGLE, sync_bn=sync_bn)
        values = {}
        for name in TORCHRUN_ENV:
            text = os.environ.get(name)
            if text is None or not text.strip().isdigit():
                raise ValueError(f"{name} must be a whole number >= 0 set by torchrun; got {shown(text)}")
            values[name] = int(text)
        rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
        if not 0 <= rank < world:
            raise ValueError(f"RANK must be between 0 and WORLD_SIZE - 1 ({world - 1}); got {rank}")
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        backend = "nccl" if cuda else "gloo"
        if cuda:
            torch.cuda.set_device(local)
        elastic = ElasticJob.from_env()
        if not dist.is_initialized():
            dist.init_process_group(backend, store=attempt_store(rank, world), rank=rank, world_size=world)
        return cls(rank, world, local, backend, sync_bn, elastic)

    def device(self, device: str) -> str:
        """The device this rank trains on: its local GPU when the job asks for CUDA."""
        if self.distributed and (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
            return f"cuda:{self.local_rank}"
        return device

    def check_batch(self, batch: int) -> None:
        if batch % self.world_size:
            raise ValueError(f"batch_size must be a multiple of the {self.world_size} processes (each takes an "
                             f"equal share of the global batch); got {batch}")

    def prepare(self, model: nn.Module) -> nn.Module:
        """The module to run forward: `model` itself alone, else `model` (its BatchNorms made global when
        `sync_bn`) wrapped in DistributedDataParallel. `model` keeps its own parameters either way."""
        if not self.distributed:
            return model
        if self.sync_bn:
            convert = nn.SyncBatchNorm.convert_sync_batchnorm if self.backend == "nccl" else global_batch_norm
            convert(model)
            keep_frozen_norms_in_eval(model)  # the swapped layers lost fine-tuning's hooks
        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def shard(self, batch: Tensor) -> Tensor:
        """This rank's equal share of a global batch (rank r takes the r-th slice)."""
        if not self.distributed:
            return batch
        share = len(batch) // self.world_size
        return batch[self.rank * share:(self.rank + 1) * share]

    def step_totals(self, loss: Tensor, correct: Tensor, images: int, stop: bool) -> tuple[float, int, int, bool]:
        """(mean loss, correct, images, any rank asked to stop) over the global batch: one all_reduce a step."""
        if not self.distributed:
            return loss.item(), int(correct), images, stop
        totals = torch.stack([loss.detach().float() * images, correct.float(),
                              torch.tensor(float(images), device=loss.device),
                              torch.tensor(float(stop), device=loss.device)]).double()
        dist.all_reduce(totals)
        loss_sum, correct_sum, count, stops = totals.tolist()
        return loss_sum / count, int(correct_sum), int(count), stops > 0

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's BatchNorm running statistics on every rank (each rank's own shares moved them apart)."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def test_share(self, count: int) -> slice:
        """This rank's contiguous part of `count` test images."""
        if not self.distributed:
            return slice(0, count)
        bounds = [count * r // self.world_size for r in range(self.world_size + 1)]
        return slice(bounds[self.rank], bounds[self.rank + 1])

    def sum_tensor(self, value: Tensor) -> Tensor:
        if self.distributed:
            value = value.clone()
            dist.all_reduce(value)
        return value

    def gather(self, value: Tensor) -> Tensor:
        """Every rank's `value` (any length), concatenated in rank order."""
        if not self.distributed:
            return value
        parts: list[Tensor | None] = [None] * self.world_size
        dist.all_gather_object(parts, value.cpu())
        return torch.cat([p for p in parts if p is not None])

    def digests(self, model: nn.Module) -> list[str]:
        """Every rank's `state_digest(model)`, in rank order (one entry alone)."""
        digest = state_digest(model)
        if not self.distributed:
            return [digest]
        parts: list[str | None] = [None] * self.world_size
        dist.all_gather_object(parts, digest)
        return [str(p) for p in parts]

    def peer_lost(self, exc: BaseException) -> PeerLost | None:
        """`exc` as a PeerLost when it is a collective that failed because another process ended, else None."""
        text = str(exc)
        if not self.distributed or not (isinstance(exc, dist.DistError) or any(s in text for s in PEER_SIGNS)):
            return None
        detail = " ".join(text.split("] ", 1)[-1].split(". ")[0].split())[:160]
        then = ("torchrun restarts the job, which goes on from the run's last checkpoint"
                if self.elastic and self.elastic.restarts_left else "can go on with --resume")
        return PeerLost(f"another process of this {self.world_size}-process job ended ({detail}); the run is "
                        f"interrupted and {then}")

    def barrier(self) -> None:
        """Wait until every process of the job gets here: the ranks end their collectives together, so none tears
        its process group down while a peer still talks to it (a process then aborted at exit, now and then)."""
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """End the process group `from_env` started (one of a single process too: torchrun --nproc_per_node=1)."""
        if self.backend and dist.is_initialized():
            dist.destroy_process_group()


SINGLE = Replicas()
_HANDSHAKE = "resnet_core/attempt"  # the agent store's keys of `attempt_store`
STORE_TIMEOUT = timedelta(minutes=30)  # torch's default for a gloo process group


def attempt_store(rank: int, world: int) -> dist.Store | None:
    """The store of this attempt's process group: a fresh namespace of torchrun's shared store, or None (env://).

    torchrun's c10d rendezvous hands its workers one store for every restart of a job (TORCHELASTIC_USE_AGENT_STORE),
    and this torch keeps the keys of earlier attempts in it: a restarted process group could read a dead worker's
    address and fail to connect, or hang (pytorch/pytorch#135712, measured here). TORCHELASTIC_RESTART_COUNT cannot
    name the attempt, as each machine counts its own restarts. So the workers of an attempt agree on a fresh token:
    rank 0 draws it and answers every other rank's request, whose number `store.add` makes new, until each confirms.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or world == 1:
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=STORE_TIMEOUT)
    if rank:
        ask = store.add(f"{_HANDSHAKE}/asks/{rank}", 1)
        token = store.get(f"{_HANDSHAKE}/answer/{rank}/{ask}").decode()  # waits for rank 0's answer
        store.set(f"{_HANDSHAKE}/ok/{token}/{rank}", "1")
    else:
        token = _answer_all(store, world, uuid.uuid4().hex)
    return dist.PrefixStore(f"resnet_core/{token}/", store)


def _answer_all(store: dist.Store, world: int, token: str) -> str:
    """Rank 0's side of `attempt_store`: answer each rank's latest request with `token` until all have confirmed."""
    waiting, deadline = set(range(1, world)), time.monotonic() + STORE_TIMEOUT.total_seconds()
    while waiting:
        for rank in sorted(waiting):
            ask = store.add(f"{_HANDSHAKE}/asks/{rank}", 0)  # an earlier attempt's request is answered in vain
            if ask:
                store.set(f"{_HANDSHAKE}/answer/{rank}/{ask}", token)
            if store.check([f"{_HANDSHAKE}/ok/{token}/{rank}"]):
                waiting.discard(rank)
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"ranks {sorted(waiting)} did not join the process group within {STORE_TIMEOUT}")
        time.sleep(0.02)
    return token


def is_torchrun_worker() -> bool:
    return any(name in os.environ for name in TORCHRUN_ENV)


def watch_torchrun_worker() -> None:
    """A torchrun worker that crashes in native code prints every thread's Python stack (one line from torch)."""
    if is_torchrun_worker() and not faulthandler.is_enabled():
        faulthandler.enable()


def end_torchrun_worker(code: int) -> NoReturn:
    """End a torchrun worker now, with `code`, its output flushed, skipping the interpreter's teardown.

    Why: in torch 2.14.1 a gloo process group that DistributedDataParallel has used outlives destroy_process_group
    (its 3 threads still run after it, measured; pytorch/pytorch#107298), so it is torn down at interpreter exit,
    where a worker aborted now and then after its run had finished and been stored ("terminate called without an
    active exception", SIGABRT), and torchrun reported the job failed. Every file is closed before this."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can reach its reader
    os._exit(code)


def torchrun_label() -> str:
    """"rank R of W" when torchrun started this process (read as text, before anything is checked), else ""."""
    if "RANK" not in os.environ:
        return ""
    return f"rank {shown(os.environ['RANK'])[1:-1]} of {shown(os.environ.get('WORLD_SIZE', '?'))[1:-1]}"


def state_digest(model: nn.Module | dict[str, Tensor]) -> str:
    """SHA-256 of a state_dict's names and exact bytes: equal digests mean bit-identical weights."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across all ranks (CPU sync BN).

    One all_reduce of (sum, sum of squares) per layer forward; its backward sums the gradients the same way.
    In eval mode, or without a process group, it is nn.BatchNorm2d.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(input)
        x = input.float()
        count = x.numel() // x.shape[1] * dist.get_world_size()  # every rank holds an equal share
        sums = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3))]))
        mean, mean_sq = sums.chunk(2)
        var = (mean_sq / count - (mean / count) ** 2).clamp_min(0)
        mean = mean / count
        if self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1 / int(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(1, count - 1), momentum)
        shape = (1, -1, 1, 1)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


class _AllReduceSum(torch.autograd.Function):
    """The sum over ranks; the gradient of each rank's input is the sum of the ranks' output gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def global_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d under `module` by a GlobalBatchNorm2d holding the same parameters and buffers."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                            child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            replacement.to(next(child.parameters(), next(child.buffers(), torch.empty(0))).device)
            replacement.weight, replacement.bias = child.weight, child.bias
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            global_batch_norm(child)
    return module

