"""Training on several processes with ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m napari_attunet train ...`` starts N processes;
torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``)
tells each one its place.  :func:`start` joins the process group (NCCL on CUDA,
Gloo on the CPU); a process started without torchrun (or with one process) trains
exactly as before.

A step on N processes is the step one process takes on the same global batch:

* every process draws the same sample order; each takes its share of the batch
  (:meth:`Group.share`), and each sample's augmentation has its own seed, so a
  sample's view does not depend on which process draws it;
* batch normalisation uses the statistics of the global batch (``SyncBatchNorm``
  on GPUs, :class:`GlobalBatchNorm` on the CPU, where ``SyncBatchNorm`` does not run);
* the loss's sums (cross-entropy, the Dice terms' intersections and areas) are
  added across processes before any ratio is taken (:meth:`Group.sum`), with
  gradients, so every process holds the global loss and DDP's gradient average
  gives the single-process gradient.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes files."""
        return self.rank == 0

    def share(self, indices: list[int]) -> list[int]:
        """This process's part of a global batch (positions ``rank``, ``rank + world_size``, ...)."""
        return indices[self.rank::self.world_size]

    def positions(self, count: int) -> list[int]:
        """Positions in the global batch of :meth:`share`'s items."""
        return list(range(count))[self.rank::self.world_size]

    @staticmethod
    def sum(tensor: torch.Tensor) -> torch.Tensor:
        """Sum over processes, differentiable (the backward pass sums the gradients too)."""
        return _ProcessSum.apply(tensor)


class _ProcessSum(torch.autograd.Function):
    """All-reduce (sum) with gradients: each process's gradient is the sum of all processes' ones."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        gradient = gradient.clone()
        dist.all_reduce(gradient)
        return gradient


def environment_group() -> Group | None:
    """The group torchrun describes in the environment; None for a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    return Group(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def check_batches(samples: int, batch_size: int, group: Group) -> None:
    """Every global batch of an epoch must give each process at least one sample."""
    last = samples % batch_size or batch_size
    if min(batch_size, samples, last) < group.world_size:
        raise ValueError(f"{samples} training images in global batches of {batch_size} leave a batch of "
                         f"{min(batch_size, samples, last)} for {group.world_size} processes; every batch "
                         "needs at least one image per process (change --batch-size or the process count)")


def start(group: Group, device: torch.device) -> torch.device:
    """Join the process group; returns this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


class GlobalBatchNorm(nn.BatchNorm2d):
    """Batch normalisation with the statistics of the batch across all processes (any device)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        channels = x.shape[1]
        count = torch.tensor([x.numel() / channels], dtype=x.dtype, device=x.device)
        sums = Group.sum(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        n = sums[-1]
        mean = sums[:channels] / n
        var = (sums[channels:2 * channels] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1).clamp_min(1))
        shape = (1, channels, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def wrap(model: nn.Module, device: torch.device, group: Group) -> nn.Module:
    """``model`` with batch statistics over all processes, inside DistributedDataParallel.

    The batch-norm layers of ``model`` are converted in place, so ``model`` itself (not
    the wrapper) is what gets validated and saved.
    """
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        for name, child in list(model.named_children()):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    else:
        for module in model.modules():
            if type(module) is nn.BatchNorm2d:
                module.__class__ = GlobalBatchNorm
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)

