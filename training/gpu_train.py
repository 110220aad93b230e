"""Train candidate default weights side by side on one CUDA GPU within a wall-clock budget.

Run from the repository root on a machine with a GPU; everything happens in one
command, so a short GPU session is enough::

    PYTHONPATH=. python training/gpu_train.py --data DRISHTI_DIR --out OUTDIR --budget 500

Where the GPU machine has no copy of the dataset, copy its training half into
``.gpu_data/`` first (git ignores it: the dataset never goes into the repository).

1. Report the GPU, time ``segment`` on it (one Drishti image, a batch of 8, a 4000 x 3000
   photo) and time single-process training epochs there.
2. Start every run in RUNS as its own ``napari-attunet train`` process with a short
   probe (3 epochs) to measure seconds per epoch with all of them sharing the GPU, then
   the real runs with as many epochs as the rest of the budget allows (the cosine
   schedule needs the count up front).  Runs still going at the deadline are stopped;
   their best checkpoint is whole because checkpoints are written atomically.
3. Write each run's best weights and everything measured into OUTDIR.

The default weights are then chosen among the attention runs by validation score (the
5 held-out training images), never by the test split; see docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from napari_attunet.training import read_log

# name -> extra `napari-attunet train` arguments; every run validates on the same images (split seed 0).
RUNS = {
    "attention_seed0": ["--seed", "0"],
    "attention_seed1": ["--seed", "1"],
    "attention_seed2": ["--seed", "2"],
    "attention_from_default": ["--seed", "0", "--init", "default", "--lr", "1e-3"],
    "plain_seed0": ["--seed", "0", "--no-attention"],
}


def _timed(function, repeats: int, sync) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cuda_benchmarks(data: Path, device: str, scratch: Path) -> dict:
    """Inference and training speed on the GPU, one process alone on it."""
    import torch

    from napari_attunet import load_model, segment
    from napari_attunet.datasets import load_drishti
    from napari_attunet.training import TrainConfig, iter_train

    report: dict = {"device": device}
    if device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(0)
        report["cuda"] = torch.version.cuda
    report["torch"] = torch.__version__
    samples = load_drishti(data, "train")
    model = load_model(device=device)
    image = samples[0].image
    big = np.asarray(torch.nn.functional.interpolate(
        torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float(), size=(3000, 4000), mode="bilinear")[0]
        .permute(1, 2, 0).round().clamp(0, 255).byte())
    batch = [s.image for s in samples[:8]]
    for _ in range(3):  # warm-up (cuDNN algorithm choice, allocator)
        segment(image, model, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    report["segment_seconds"] = {
        f"one image {image.shape[1]}x{image.shape[0]}": _timed(lambda: segment(image, model, device), 20, sync),
        "batch of 8, per image": _timed(lambda: segment(batch, model, device, batch_size=8), 5, sync) / 8,
        "one image 4000x3000": _timed(lambda: segment(big, model, device), 5, sync),
        "one image, no attention maps": _timed(lambda: segment(image, model, device, attention=False), 20, sync),
    }
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        segment(big, model, device)
        report["segment_4000x3000_peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    config = TrainConfig(epochs=4, val_every=1000, device=device, seed=0)
    stamps = []
    for event in iter_train(samples, scratch / "bench.safetensors", config):
        if event.stage == "validate":
            stamps.append(event.elapsed)
    epochs = np.diff(stamps)
    report["train_epoch_seconds"] = {"first": round(stamps[0], 3), "median_after_first": float(np.median(epochs))}
    return report


def _launch(name: str, extra: list[str], data: Path, out: Path, epochs: int, log: Path, device: str):
    command = [sys.executable, "-m", "napari_attunet", "train", "--data", str(data),
               "--out", str(out / f"{name}.safetensors"), "--epochs", str(epochs), "--device", device,
               "--threads", "2", "--log", str(log), *extra]
    stream = open(out / f"{name}.out", "w")
    return subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)


def _seconds_per_epoch(log: Path) -> float | None:
    seconds = [row["seconds"] for row in read_log(log)]
    return (seconds[-1] - seconds[0]) / (len(seconds) - 1) if len(seconds) >= 2 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=500.0, help="wall-clock seconds for the whole script")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-epochs", type=int, default=800)
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + args.budget
    work = Path("/tmp/gpu_train")
    shutil.rmtree(work, ignore_errors=True)
    (work / "probe").mkdir(parents=True)
    (work / "runs").mkdir()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"budget_seconds": args.budget, "runs": {}}
    try:
        report["benchmarks"] = cuda_benchmarks(args.data, args.device, work)
    except Exception as error:  # the training below still matters more than the figures
        report["benchmarks_error"] = repr(error)
    print(json.dumps(report, indent=1), flush=True)

    # Probe: all runs together for 3 epochs to learn the shared speed.
    probe = {name: _launch(name, RUNS[name] + ["--val-every", "1"], args.data, work / "probe", 3,
                           work / "probe" / f"{name}.log.jsonl", args.device) for name in args.runs}
    probe_start = time.monotonic()
    for process in probe.values():
        process.wait()
    probe_wall = time.monotonic() - probe_start
    rates = [r for name in args.runs if (r := _seconds_per_epoch(work / "probe" / f"{name}.log.jsonl"))]
    if not rates:
        print((work / "probe" / f"{args.runs[0]}.out").read_text())
        raise SystemExit("probe failed: no run finished its epochs")
    # Validation runs every 2nd epoch in the real runs but every epoch in the probe: a safe overestimate.
    per_epoch = max(rates)
    startup = max(5.0, probe_wall - 3 * per_epoch)  # interpreter, imports, reading the images
    epochs = int(min(args.max_epochs, max(10, (deadline - time.monotonic() - startup - 25.0) / per_epoch)))
    report["probe_seconds_per_epoch"] = rates
    report["probe_startup_seconds"] = round(startup, 1)
    report["epochs"] = epochs
    print(f"probe: {per_epoch:.2f} s per epoch with {len(args.runs)} runs sharing the device; "
          f"training {epochs} epochs", flush=True)

    runs = {name: _launch(name, RUNS[name], args.data, work / "runs", epochs,
                          work / "runs" / f"{name}.log.jsonl", args.device) for name in args.runs}
    while any(p.poll() is None for p in runs.values()) and time.monotonic() < deadline - 20:
        time.sleep(2)
    for name, process in runs.items():
        finished = process.poll() is not None
        if not finished:
            process.terminate()
            process.wait(10)
        log = work / "runs" / f"{name}.log.jsonl"
        history = read_log(log)
        scored = [h for h in history if "dice_od" in h]
        best = max(scored, key=lambda h: h["dice_od"] + h["dice_oc"], default=None)
        report["runs"][name] = {"arguments": RUNS[name], "finished": finished, "exit_code": process.returncode,
                                "epochs_done": history[-1]["epoch"] if history else 0,
                                "seconds": history[-1]["seconds"] if history else None, "best": best}
        weights = work / "runs" / f"{name}.safetensors"
        if weights.exists():
            shutil.copy2(weights, args.out / weights.name)
    report["total_seconds"] = round(time.monotonic() - start, 1)
    (work / "gpu_report.json").write_text(json.dumps(report, indent=1))
    shutil.copy2(work / "gpu_report.json", args.out / "gpu_report.json")
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as archive:
        for path in sorted(work.glob("*/*.log.jsonl")) + sorted(work.glob("*/*.out")):
            archive.add(path, arcname=f"{path.parent.name}/{path.name}")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
