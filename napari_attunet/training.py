"""Training and fine-tuning the Attention U-Net on annotated fundus photographs.

:func:`iter_train` is a generator of :class:`~napari_attunet.progress.Progress`
events (one per training step, one per validation); closing it stops training at
the next step.  The best network by validation Dice (mean of OD and OC) is written
to ``out`` whenever it improves, and the full training state to
``<out>.resume.safetensors`` after every epoch, both atomically, so a kill at any
moment leaves the last good files and ``resume=True`` continues where it stopped.

An existing ``out`` (or resume state) is replaced only with ``overwrite=True``; resuming
continues into the same ``out``.  The resume state records the run's settings and
images, and resuming with others is refused: they would silently change the run (the
learning-rate schedule follows ``epochs``, for one).  Temporary files that a killed
run left beside ``out`` are removed when the next run starts.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save as save_tensors_bytes

from . import __version__
from .atomic import atomic_write_bytes, remove_stale_temporaries
from .augment import sample_view
from .blending import blended
from .datasets import Sample
from .devices import resolve_device
from .distributed import barrier, check_batches, environment_group, start, wrap
from .evaluation import score_sample, summarise
from .inference import DEFAULT_PREPROCESSING, Segmenter
from .model import AttentionUNet
from .preprocessing import disc_geometry
from .progress import Progress, Stopwatch, run_to_end
from .weights import UNCALIBRATED_THRESHOLDS, load_model, save_weights, thresholds_from

FINE_TUNE_STEPS = 120
"""Optimisation steps of the fine-tuning recipe (about 7 minutes on 2 CPU cores)."""
MIN_VALIDATION_IMAGES = 30
"""Fewer annotated photos than this are all used for fine-tuning, without a validation split."""


@dataclass
class TrainConfig:
    """Settings of one training run (all of them are stored in the weights' metadata)."""

    epochs: int = 120
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 3
    val_fraction: float = 0.1
    val_every: int = 2
    seed: int = 0
    split_seed: int = 0
    """Which images are held out for validation; separate from ``seed`` so that runs with
    different seeds validate on the same images and can be compared."""
    input_size: int = 256
    context: float = DEFAULT_PREPROCESSING["context"]
    whole_image_fraction: float = 0.35
    tight_photo_fraction: float = 0.35
    """Share of views cut from a simulated tight crop of the photo (see :mod:`napari_attunet.augment`)."""
    augment: bool = True
    freeze_encoder: bool = False
    init_weights: str | None = None
    """None: random initialisation; ``"default"``: the shipped weights; or a weights file (fine-tuning)."""
    keep_start: float = 0.0
    """Fine-tuning only: the share of the starting network in the saved one, whose weights are
    ``keep_start * start + (1 - keep_start) * tuned`` (weight-space ensembling, as in WiSE-FT:
    Wortsman et al. 2022, arXiv:2109.01903).  It keeps some of what the starting network learnt
    from many photos when the user's photos are few."""
    cup_distillation: float = 0.0
    """Fine-tuning only: weight of a loss that keeps the cup output close to the starting network's
    on the same views (learning without forgetting: Li and Hoiem 2016, arXiv:1606.09282)."""
    attention: bool = True
    base_channels: int = 16
    depth: int = 5
    norm: str = "batch"
    deep_supervision: bool = True
    device: str = "auto"
    threads: int | None = None
    data_description: str = ""
    command: str = ""

    @classmethod
    def fine_tuning(cls, images: int, **settings) -> TrainConfig:
        """The recipe for adapting trained weights to a user's camera from ``images`` annotated photos.

        A fixed budget of :data:`FINE_TUNE_STEPS` optimisation steps (so that the time does not grow
        with the number of images), a lower learning rate than training from scratch, below
        :data:`MIN_VALIDATION_IMAGES` images no validation split (the best epoch chosen on one or
        two held-out photos is mostly chance, while the last network of a cosine schedule is stable),
        and a quarter of the starting network blended into the saved one (``keep_start``), which
        tempers what a few photos teach (their cup sizes, for one) at a small cost to the disc
        (docs/adapting.md).
        ``settings`` override any field.
        """
        steps_per_epoch = max(1, math.ceil(images / settings.get("batch_size", cls.batch_size)))
        recipe = {"epochs": max(1, math.ceil(FINE_TUNE_STEPS / steps_per_epoch)), "learning_rate": 3e-4,
                  "warmup_epochs": 1, "init_weights": "default", "keep_start": 0.25,
                  "val_fraction": 0.1 if images >= MIN_VALIDATION_IMAGES else 0.0}
        return cls(**{**recipe, **settings})

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.input_size < 64 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 and at least 64, got {self.input_size}")
        if not 0.0 <= self.keep_start < 1.0:
            raise ValueError(f"keep_start must lie in [0, 1), got {self.keep_start}")
        if self.cup_distillation < 0:
            raise ValueError(f"cup_distillation must not be negative, got {self.cup_distillation}")
        if self.init_weights is None and (self.keep_start or self.cup_distillation):
            raise ValueError("keep_start and cup_distillation need a starting network (init_weights)")


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      total: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice, averaged over the disc and cup channels.

    ``total`` (training on several processes) sums a tensor over the processes: the sums
    are added before the ratios are taken, so the loss is that of the global batch.
    """
    probs = torch.sigmoid(logits)
    dims = (0, 2, 3)
    if total is None:
        bce = F.binary_cross_entropy_with_logits(logits, target)
        intersection, probs_sum, target_sum = (probs * target).sum(dims), probs.sum(dims), target.sum(dims)
    else:
        channels = logits.shape[1]
        count = torch.tensor([float(target.numel())], device=logits.device)
        sums = total(torch.cat([F.binary_cross_entropy_with_logits(logits, target, reduction="sum")[None], count,
                                (probs * target).sum(dims), probs.sum(dims), target.sum(dims)]))
        bce = sums[0] / sums[1]
        intersection, probs_sum, target_sum = sums[2:].split(channels)
    soft_dice = (2 * intersection + 1.0) / (probs_sum + target_sum + 1.0)
    return bce + (1.0 - soft_dice).mean()


def split_samples(samples: Sequence[Sample], val_fraction: float, seed: int) -> tuple[list, list]:
    """Shuffle with ``seed`` and hold out ``val_fraction`` (at least one when > 0 and possible)."""
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = int(round(val_fraction * len(samples)))
    if val_fraction > 0 and n_val == 0 and len(samples) > 1:
        n_val = 1
    val = [samples[i] for i in sorted(order[:n_val])]
    train = [samples[i] for i in sorted(order[n_val:])]
    return train, val


def evaluate_samples(segmenter: Segmenter, samples: Sequence[Sample]) -> dict[str, float]:
    """Mean per-image Dice of disc and cup over ``samples`` with the full inference pipeline."""
    summary = summarise([score_sample(segmenter, sample) for sample in samples])
    return {key: summary[key] for key in ("dice_od", "dice_oc")}


class _Views:
    """Training samples held as uint8 tensors on the training device, with their disc geometry.

    Keeping them on the device makes cropping and augmentation run there too: on a GPU,
    sampling views on the CPU would otherwise take longer than the training step.
    """

    def __init__(self, samples: Sequence[Sample], device: torch.device | str = "cpu"):
        # torch.tensor copies: sample images may be read-only views (torch warns on those)
        self.images = [torch.tensor(s.image).permute(2, 0, 1).contiguous().to(device) for s in samples]
        self.masks = [torch.from_numpy(np.stack([s.disc, s.cup]).astype(np.uint8)).to(device) for s in samples]
        self.geometry = [disc_geometry(s.disc) for s in samples]  # discs are checked non-empty before

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices, config: TrainConfig, seeds: Sequence[int]):
        """Views of the samples ``indices``, each drawn with its own seed (from :func:`view_seed`)."""
        pairs = [
            sample_view(self.images[i], self.masks[i], self.geometry[i], config.input_size,
                        torch.Generator().manual_seed(seed), context=config.context,
                        whole_image_fraction=config.whole_image_fraction,
                        tight_photo_fraction=config.tight_photo_fraction, augment=config.augment)
            for i, seed in zip(indices, seeds)
        ]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def view_seed(seed: int, epoch: int, position: int) -> int:
    """The augmentation seed of the sample at ``position`` in an epoch's order: the same on any process."""
    return (seed * 1_000_003 + epoch) * 1_000_033 + position


def _learning_rate(config: TrainConfig, epoch_position: float) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if epoch_position < config.warmup_epochs:
        return config.learning_rate * (epoch_position + 1e-3) / config.warmup_epochs
    progress = (epoch_position - config.warmup_epochs) / max(config.epochs - config.warmup_epochs, 1)
    return config.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _initial_model(config: TrainConfig, device: torch.device) -> AttentionUNet:
    if config.init_weights is None:
        return AttentionUNet(base_channels=config.base_channels, depth=config.depth, norm=config.norm,
                             attention=config.attention, deep_supervision=config.deep_supervision)
    base = load_model(None if config.init_weights == "default" else config.init_weights, device="cpu")
    settings = {**base.config, "deep_supervision": config.deep_supervision}
    model = AttentionUNet(**settings)
    model.load_state_dict(base.state_dict(), strict=False)  # deep heads are new when absent before
    info = base.weights_info
    model.weights_info.metadata = dict(info.metadata)
    # Keep the lineage: how the starting network was trained (its own ancestors included).
    model.weights_info.metadata["fine_tuned_from"] = {"weights": info.name, "sha256": info.sha256,
                                                      "training": info.metadata.get("training", {}),
                                                      "fine_tuned_from": info.metadata.get("fine_tuned_from")}
    # Keep the preprocessing the base network was trained with.
    config.context = info.metadata.get("preprocessing", {}).get("context", config.context)
    return model


def cup_distillation_loss(logits: torch.Tensor, start_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the cup output against the starting network's cup probabilities."""
    return F.binary_cross_entropy_with_logits(logits[:, 1], torch.sigmoid(start_logits[:, 1]))


def _freeze_encoder(model: AttentionUNet) -> None:
    for parameter in model.encoders.parameters():
        parameter.requires_grad_(False)


def _encoder_eval(model: AttentionUNet) -> None:
    """A frozen encoder keeps its normalisation statistics."""
    model.encoders.eval()


def read_log(path: str | os.PathLike) -> list[dict]:
    """The per-epoch records of a ``napari-attunet train --log`` file ([] when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def resume_path(out: str | os.PathLike) -> Path:
    """Where training keeps the state that ``resume=True`` continues from."""
    out = Path(out)
    return out.with_name(out.name + ".resume.safetensors")


RESUMABLE_DIFFERENCES = ("device", "threads", "command", "data_description")
"""Settings a resumed run may change: where and how fast it runs, not what it computes."""
RESUME_KEY = "napari_attunet_resume"


def run_settings(config: TrainConfig, train_names: Sequence[str], val_names: Sequence[str]) -> dict:
    """What a resumed run must share with the run it continues: settings and images."""
    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_DIFFERENCES}
    return json.loads(json.dumps({**settings, "train_images": list(train_names),
                                  "validation_images": list(val_names)}))


def check_outputs(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to replace an earlier run's files unless asked; refuse to resume without a state."""
    resume_file = resume_path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a folder; the output must be a weights file name (.safetensors)")
    if resume:
        if not resume_file.is_file():
            raise ValueError(f"{resume_file}: no resume state to continue from (no run into {out.name} was "
                             "interrupted here); start without resume")
        return
    existing = [path for path in (out, resume_file) if path.exists()]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]} exists; replace it with overwrite (--overwrite), continue its run "
                         "with resume (--resume), or choose another output file")


def _resume_settings_problem(stored: dict, current: dict) -> str | None:
    """Which recorded settings differ; a setting newer than the record matches at its default."""
    defaults = asdict(TrainConfig())
    stored = {**{k: v for k, v in defaults.items() if k in current}, **stored}
    changed = [key for key in sorted(set(stored) | set(current)) if stored.get(key) != current.get(key)]
    if not changed:
        return None
    shown = [key if key.endswith("images") else f"{key} {stored.get(key)!r} -> {current.get(key)!r}"
             for key in changed[:4]]
    return ("was written by a run with other settings or images (" + "; ".join(shown) + "); resume with the "
            "same ones, or start a new run with overwrite (--overwrite)")


def _save_resume(path: Path, model, optimizer, state: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for param_id, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{param_id}.{key}"] = tensor.detach().cpu().contiguous()
    data = save_tensors_bytes(tensors, metadata={RESUME_KEY: json.dumps(state)})
    atomic_write_bytes(path, data)


def _read_resume_state(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            state = json.loads((handle.metadata() or {})[RESUME_KEY])
    except Exception as error:  # safetensors raises its own types on damaged files
        raise ValueError(f"{path}: not a readable napari-attunet resume state ({type(error).__name__}: "
                         f"{error}); start a new run with overwrite (--overwrite)") from None
    fields = {"epoch": int, "best_score": (int, float), "best_epoch": int, "history": list, "seconds": (int, float)}
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) or isinstance(state.get(k), bool)
                                          for k, t in fields.items()):
        raise ValueError(f"{path}: the resume state is damaged (fields {', '.join(fields)} expected)")
    if "settings" in state and not isinstance(state["settings"], dict):
        raise ValueError(f"{path}: the resume state is damaged ('settings' is not an object)")
    return state


def _load_resume(path: Path, model, optimizer, settings: dict) -> dict:
    """Restore model and optimizer from ``path``; refuse another run's state with a message naming the file."""
    state = _read_resume_state(path)
    if state.get("settings") is None:
        warnings.warn(f"{path} records no run settings (written by an older napari-attunet); they could not "
                      "be checked against this run's", UserWarning, stacklevel=3)
    elif problem := _resume_settings_problem(state["settings"], settings):
        raise ValueError(f"{path} {problem}")
    try:
        tensors = load_tensors(str(path))
    except Exception as error:  # truncated or damaged tensor data
        raise ValueError(f"{path}: damaged resume state ({type(error).__name__}: {error}); start a new run "
                         "with overwrite (--overwrite)") from None
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if found != expected:
        differing = sorted(set(found) ^ set(expected)) or [k for k in expected if found[k] != expected[k]]
        raise ValueError(f"{path}: the resume state holds another network than this run's (first difference: "
                         f"{differing[0]}); resume with the same settings, or start a new run with overwrite "
                         "(--overwrite)")
    model.load_state_dict(weights)
    optim_state = optimizer.state_dict()
    restored: dict = {}
    try:
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, param_id, name = key.split(".", 2)
                restored.setdefault(int(param_id), {})[name] = value
        optim_state["state"] = restored
        optimizer.load_state_dict(optim_state)
    except (ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"{path}: the optimiser state does not fit this run ({error})") from None
    return state


def iter_train(samples: Sequence[Sample], out: str | os.PathLike, config: TrainConfig | None = None, *,
               val_samples: Sequence[Sample] | None = None, resume: bool = False,
               overwrite: bool = False) -> Iterator[Progress]:
    """Train on ``samples`` and write the best network to ``out``; yields progress events.

    Validation uses ``val_samples`` when given, else ``config.val_fraction`` of ``samples``
    (without validation, the last epoch's network is kept).  The final event's result is
    the path of the saved weights.  An existing ``out`` or resume state is refused unless
    ``overwrite``; ``resume`` continues the run whose state lies beside ``out``.
    """
    config = config or TrainConfig()
    config.validate()
    out = Path(out)
    check_outputs(out, resume, overwrite)
    if not samples:
        raise ValueError("no training samples")
    for sample in samples:
        if not sample.disc.any():
            raise ValueError(f"{sample.name}: empty optic disc mask; every training image needs a disc")
    if val_samples is None:
        train_samples, val_samples = split_samples(samples, config.val_fraction, config.split_seed)
    else:
        train_samples, val_samples = list(samples), list(val_samples)
    if not train_samples:
        raise ValueError(f"validation fraction {config.val_fraction} of {len(samples)} images leaves none "
                         "to train on; lower it or add images")
    device = resolve_device(config.device)
    processes = environment_group()  # torchrun: several processes
    if processes is not None:
        check_batches(len(train_samples), config.batch_size, processes)
        device = start(processes, device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = _initial_model(config, device).to(device)
    if config.freeze_encoder:
        _freeze_encoder(model)
    # Fine-tuning's anchors to the starting network: its weights (blending) and its outputs (distillation).
    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if config.keep_start else None
    start_network = None
    if config.cup_distillation:
        start_network = AttentionUNet(**model.config).to(device)
        start_network.load_state_dict(model.state_dict())
        start_network.eval().requires_grad_(False)
    network = wrap(model, device, processes) if processes is not None else model
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    views = _Views(train_samples, device)
    steps_per_epoch = max(1, math.ceil(len(views) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    train_names = [s.name for s in train_samples]
    val_names = [s.name for s in val_samples]
    settings = run_settings(config, train_names, val_names)
    resume_file = resume_path(out)
    for stale in (out, resume_file):
        remove_stale_temporaries(stale)
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "history": [], "seconds": 0.0}
    if resume:
        state = _load_resume(resume_file, model, optimizer, settings)
    else:
        resume_file.unlink(missing_ok=True)  # a replaced run's state must not be resumed into this one
    state["settings"] = settings
    metadata = dict(model.weights_info.metadata)
    metadata["preprocessing"] = {**DEFAULT_PREPROCESSING, **metadata.get("preprocessing", {}),
                                 "context": config.context}
    # Training changes how confident the network is, so a parent's calibrated thresholds do not carry over.
    metadata["thresholds"] = dict(UNCALIBRATED_THRESHOLDS)
    thresholds = thresholds_from(metadata)
    clock = Stopwatch()
    seconds_before = state["seconds"]

    def saved_network() -> AttentionUNet:
        """The network as it would be saved now (blended with the start when asked)."""
        return blended(model, start_state, config.keep_start) if start_state is not None else model

    def save_best(candidate: AttentionUNet, metrics: dict) -> None:
        candidate.weights_info.metadata = {
            **metadata,
            "training": {
                "config": asdict(config),
                "data": config.data_description,
                "train_images": train_names,
                "validation_images": val_names,
                "command": config.command,
                "epochs_trained": state["epoch"],
                "seconds": round(seconds_before + clock(), 1),
                "device": str(device),
                "torch_version": torch.__version__,
                "package_version": __version__,
                "processes": processes.world_size if processes is not None else 1,
            },
            "metrics": {"validation": metrics},
        }
        save_weights(candidate, out)

    step = state["epoch"] * steps_per_epoch
    for epoch in range(state["epoch"], config.epochs):
        model.train()
        if config.freeze_encoder:
            _encoder_eval(model)
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(views), generator=generator).tolist()
        losses = []
        for batch_index in range(steps_per_epoch):
            indices = order[batch_index * config.batch_size:(batch_index + 1) * config.batch_size]
            if not indices:
                indices = order[: config.batch_size]
            lr = _learning_rate(config, epoch + batch_index / steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            positions = range(batch_index * config.batch_size, batch_index * config.batch_size + len(indices))
            seeds = [view_seed(config.seed, epoch, position) for position in positions]
            total = None
            if processes is not None:
                indices, seeds, total = processes.share(indices), processes.share(seeds), processes.sum
            x, y = views.batch(indices, config, seeds)
            x, y = x.to(device), y.to(device)
            output = network(x)
            loss = segmentation_loss(output.logits, y, total)
            for weight, deep in zip((0.4, 0.2, 0.1, 0.05), output.deep_supervision):
                loss = loss + weight * segmentation_loss(deep, y, total)
            if start_network is not None:
                with torch.no_grad():
                    start_logits = start_network(x).logits
                loss = loss + config.cup_distillation * cup_distillation_loss(output.logits, start_logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            elapsed = clock()
            yield Progress("train", step, total_steps, f"epoch {epoch + 1}/{config.epochs}", elapsed,
                           {"epoch": epoch + 1, "loss": losses[-1], "lr": lr})
        state["epoch"] = epoch + 1
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": round(seconds_before + clock(), 1)}
        last_epoch = epoch + 1 == config.epochs
        main = processes is None or processes.is_main  # of several processes, rank 0 validates and writes
        if main and val_samples and ((epoch + 1) % config.val_every == 0 or last_epoch):
            candidate = saved_network()
            metrics = evaluate_samples(Segmenter(candidate, device, *thresholds), val_samples)
            model.train()
            record.update(metrics)
            score = (metrics["dice_od"] + metrics["dice_oc"]) / 2
            if score > state["best_score"]:
                state["best_score"], state["best_epoch"] = score, epoch + 1
                save_best(candidate, metrics)
        elif main and not val_samples:
            save_best(saved_network(), {})
        state["history"].append(record)
        state["seconds"] = seconds_before + clock()
        if main:
            _save_resume(resume_file, model, optimizer, state)
        yield Progress("validate", step, total_steps, f"epoch {epoch + 1}/{config.epochs} done", clock(),
                       {k: v for k, v in record.items() if isinstance(v, (int, float))})
    if processes is not None:
        barrier()  # the files are complete before any process reports the end
    summary = (f"best epoch {state['best_epoch']} (validation score {state['best_score']:.4f})" if val_samples
               else f"no validation photos: the network of the last epoch ({state['epoch']}) was saved")
    yield Progress("done", total_steps, total_steps, summary, clock(), {"best_epoch": state["best_epoch"]},
                   result=out)


def train(samples: Sequence[Sample], out: str | os.PathLike, config: TrainConfig | None = None, *,
          val_samples: Sequence[Sample] | None = None, resume: bool = False, overwrite: bool = False,
          progress: Callable[[Progress], None] | None = None,
          cancel: Callable[[], bool] | None = None) -> Path:
    """Plain-call form of :func:`iter_train`; returns the path of the saved weights."""
    return run_to_end(iter_train(samples, out, config, val_samples=val_samples, resume=resume,
                                 overwrite=overwrite), cancel, progress)
