"""Speed and memory benchmarks of napari-attunet, measured side by side in one run.

    python benchmarks/run_benchmarks.py [--data ../shared/data/drishti-gs1] [--out benchmarks/results.json]

(or ``tox -e bench``).  torch runs on 2 threads.  Each comparison interleaves its
two sides (A B A B ...) and reports medians, so machine noise hits both alike; the
ratios are the requirements, the absolute times hold for the machine that ran them.
Prints a markdown report (copied into docs/benchmarks.md) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "drishti-gs1"


def interleaved(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run alternately after one warm-up each."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def release_size_photo(data: Path) -> np.ndarray:
    """The first Drishti-GS1 test image upsampled 2x to the release's size (about 2048 x 1760)."""
    from napari_attunet.datasets import load_drishti

    sample = load_drishti(data, "test")[0]
    return np.repeat(np.repeat(sample.image, 2, axis=0), 2, axis=1)


def fine_size(model) -> int:
    """The input size the shipped network runs at (its fine pass)."""
    from napari_attunet.inference import DEFAULT_PREPROCESSING

    return model.weights_info.metadata.get("preprocessing", {}).get("fine_size", DEFAULT_PREPROCESSING["fine_size"])


def monai_forward_512():
    """One forward pass of MONAI's ``AttentionUnet`` (32..512 channels) at 512 x 512: the speed reference."""
    from monai.networks.nets import AttentionUnet

    net = AttentionUnet(spatial_dims=2, in_channels=3, out_channels=2, channels=(32, 64, 128, 256, 512),
                        strides=(2, 2, 2, 2)).eval()
    x = torch.randn(1, 3, 512, 512)

    def forward():
        with torch.inference_mode():
            net(x)

    return forward


def bench_segment_vs_monai(model, photo: np.ndarray, repeats: int) -> dict:
    from napari_attunet import segment

    monai = monai_forward_512()

    def ours():
        segment(photo, model, device="cpu")

    medians = interleaved({"segment": ours, "monai_forward_512": monai}, repeats)
    return {
        "photo_shape": list(photo.shape),
        "segment_s": medians["segment"],
        "monai_attention_unet_forward_512_s": medians["monai_forward_512"],
        "ratio": medians["segment"] / medians["monai_forward_512"],
        "requirement": "ratio <= 0.5",
    }


def bench_framings(model, data: Path, repeats: int) -> dict:
    """``segment`` on a full photo, a full-field framing and tight crops, beside one MONAI forward pass.

    A second look (other zooms) runs only where the first answer is doubtful; this shows what the
    framings cost with it.  The framings are those of ``training/variants.py`` on the first test image.
    """
    import sys

    from napari_attunet import segment
    from napari_attunet.datasets import load_drishti

    sys.path.insert(0, str(REPO / "training"))
    from variants import frame

    sample = load_drishti(data, "test")[0]
    monai = monai_forward_512()
    functions = {"monai_forward_512": monai}
    shapes = {}
    for framing in ("full photo", "full field", "k=2.0", "k=1.25", "k=1.25 native"):
        image = frame(sample, framing).image
        shapes[framing] = list(image.shape)
        functions[framing] = lambda image=image: segment(image, model, device="cpu", attention=False)
    medians = interleaved(functions, repeats)
    reference = medians.pop("monai_forward_512")
    return {"monai_attention_unet_forward_512_s": reference,
            "framings": {name: {"shape": shapes[name], "segment_s": value, "ratio": value / reference}
                         for name, value in medians.items()}}


def bench_attention_overhead(shipped, repeats: int) -> dict:
    from napari_attunet import AttentionUNet

    size = fine_size(shipped)
    plain = AttentionUNet(**{**shipped.config, "attention": False}).eval()
    x = torch.randn(1, 3, size, size)

    def gated():
        with torch.inference_mode():
            shipped(x, return_attention=True)

    def ungated():
        with torch.inference_mode():
            plain(x)

    medians = interleaved({"attention": gated, "plain": ungated}, repeats)
    return {
        "input": f"1 x 3 x {size} x {size}",
        "attention_s": medians["attention"],
        "plain_s": medians["plain"],
        "ratio": medians["attention"] / medians["plain"],
        "requirement": "ratio <= 1.15",
    }


def bench_training_epoch(data: Path) -> dict:
    """Seconds for one epoch over the 50 Drishti-GS1 training images at the default settings."""
    from napari_attunet.datasets import load_drishti
    from napari_attunet.training import TrainConfig, iter_train

    samples = load_drishti(data, "train")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "napari-attunet-bench.safetensors"
    config = TrainConfig(epochs=1, val_fraction=0.0, warmup_epochs=1, threads=2)
    started = None
    steps = 0
    for event in iter_train(samples, out, config):
        if event.stage == "train":
            steps += 1
            if started is None:  # the first step pays one-off allocation costs
                started = time.perf_counter()
                first = event.elapsed
    seconds = time.perf_counter() - started
    out.unlink(missing_ok=True)
    out.with_name(out.name + ".resume.safetensors").unlink(missing_ok=True)
    per_step = seconds / max(steps - 1, 1)
    return {"images": len(samples), "steps": steps, "batch_size": config.batch_size,
            "input_size": config.input_size, "seconds_per_epoch": per_step * steps,
            "first_step_s": first}


def bench_training_step(repeats: int) -> dict:
    """One optimiser step (batch 8 at 256 px, deep supervision) with and without gates, interleaved."""
    from napari_attunet import AttentionUNet
    from napari_attunet.training import segmentation_loss

    x = torch.randn(8, 3, 256, 256)
    y = (torch.rand(8, 2, 256, 256) > 0.5).float()
    steps = {}
    for name, attention in (("attention", True), ("plain", False)):
        model = AttentionUNet(norm="batch", attention=attention, deep_supervision=True).train()
        optimizer = torch.optim.AdamW(model.parameters())

        def step(model=model, optimizer=optimizer):
            out = model(x)
            loss = segmentation_loss(out.logits, y) + sum(segmentation_loss(d, y) for d in out.deep_supervision)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        steps[name] = step
    medians = interleaved(steps, repeats)
    return {"attention_s": medians["attention"], "plain_s": medians["plain"],
            "ratio": medians["attention"] / medians["plain"]}


def training_log_summary() -> dict:
    """Training time of the shipped weights' two stages, from the committed training logs."""
    from napari_attunet.training import read_log

    stages = {}
    for stage, path in (("cpu", REPO / "training" / "attention_unet.log.jsonl"),
                        ("gpu", REPO / "training" / "gpu_h200" / "runs" / "attention_from_default.log.jsonl")):
        rows = read_log(path)
        if rows:
            stages[stage] = {"log": str(path.relative_to(REPO)), "epochs": rows[-1]["epoch"],
                             "seconds": rows[-1]["seconds"],
                             "seconds_per_epoch": rows[-1]["seconds"] / rows[-1]["epoch"]}
    return stages


PEAK_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, torch, skimage.data
    from PIL import Image
    torch.set_num_threads(2)
    from napari_attunet import load_model, segment
    model = load_model(device="cpu")
    photo = np.zeros((3000, 4000, 3), np.uint8)
    photo[:, 500:3500] = np.asarray(Image.fromarray(skimage.data.retina()).resize((3000, 3000)))
    def peak():  # VmHWM starts afresh at exec; ru_maxrss would inherit the parent's peak across fork
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    before = peak()
    result = segment(photo, model, device="cpu")
    after = peak()
    print(before, after, result.disc_found)
    """
)


def bench_peak_memory() -> dict:
    """Peak RSS of a fresh process that segments a 4000 x 3000 photo (import and model included)."""
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True)
    before, after, found = done.stdout.split()
    return {"photo": "4000 x 3000 RGB uint8 (skimage.data.retina() scaled to 3000 px, padded)",
            "peak_rss_before_segment_MB": int(before) / 2**20, "peak_rss_MB": int(after) / 2**20,
            "disc_found": found == "True", "requirement": "peak_rss_MB <= 1536"}


def bench_flops(model, repeats: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    size = fine_size(model)
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x, return_attention=True)
    flops = counter.get_total_flops()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)

    def forward():
        with torch.inference_mode():
            model(x, return_attention=True)

    def matmul():
        torch.mm(a, b)

    medians = interleaved({"forward": forward, "matmul": matmul}, repeats)
    achieved = flops / medians["forward"] / 1e9
    peak = 2 * 2048**3 / medians["matmul"] / 1e9
    return {"forward_gflop": flops / 1e9, "forward_s": medians["forward"], "achieved_gflops": achieved,
            "matmul_2048_gflops": peak, "fraction_of_matmul": achieved / peak}


def markdown(results: dict) -> str:
    s, a, f, m = results["segment"], results["attention"], results["flops"], results["memory"]
    t, log = results["training"], results.get("training_log", {})
    lines = [
        f"Machine: {results['machine']}; torch {results['torch']} with {results['threads']} threads.",
        "",
        "| benchmark | napari-attunet | reference | ratio | requirement |",
        "|---|---|---|---|---|",
        f"| `segment` end to end, {s['photo_shape'][1]} x {s['photo_shape'][0]} photo vs MONAI `AttentionUnet` "
        f"forward at 512 x 512 | {s['segment_s']:.3f} s | {s['monai_attention_unet_forward_512_s']:.3f} s | "
        f"{s['ratio']:.2f} | <= 0.5 |",
        f"| forward pass with gates vs `attention=False`, {a['input']} | {a['attention_s'] * 1000:.1f} ms | "
        f"{a['plain_s'] * 1000:.1f} ms | {a['ratio']:.3f} | <= 1.15 |",
        f"| peak RSS, `segment` on a 4000 x 3000 photo (fresh process) | {m['peak_rss_MB']:.0f} MB | "
        f"1536 MB | {m['peak_rss_MB'] / 1536:.2f} | <= 1 |",
        f"| training step (batch 8, 256 px) with gates vs `attention=False` | "
        f"{results['training_step']['attention_s']:.2f} s | {results['training_step']['plain_s']:.2f} s | "
        f"{results['training_step']['ratio']:.2f} | report |",
        f"| achieved GFLOP/s of the forward pass vs 2048^2 float32 matmul | {f['achieved_gflops']:.1f} | "
        f"{f['matmul_2048_gflops']:.1f} | {f['fraction_of_matmul']:.2f} | report |",
        "",
        f"Training: one epoch over the {t['images']} Drishti-GS1 training images ({t['steps']} steps of "
        f"{t['batch_size']} views at {t['input_size']} px) took {t['seconds_per_epoch']:.1f} s here "
        "(a published Attention U-Net tutorial: about 15 s per epoch on a GPU).",
    ]
    if "cpu" in log:
        cpu = log["cpu"]
        lines.append(f"Training of the shipped weights, stage 1 (`{cpu['log']}`): {cpu['epochs']} epochs in "
                     f"{cpu['seconds'] / 60:.1f} min ({cpu['seconds_per_epoch']:.1f} s per epoch, while other work "
                     "shared these 2 cores).")
    if "gpu" in log:
        gpu = log["gpu"]
        lines.append(f"Stage 2, fine-tuning on an NVIDIA H200 (`{gpu['log']}`): {gpu['epochs']} epochs in "
                     f"{gpu['seconds'] / 60:.1f} min ({gpu['seconds_per_epoch']:.2f} s per epoch, with 4 other "
                     "runs sharing the GPU; a published Attention U-Net tutorial: 13 minutes on a GPU).")
    lines.append(f"Peak RSS before the `segment` call (Python, torch, the model and the photo): "
                 f"{m['peak_rss_before_segment_MB']:.0f} MB. Forward pass: {f['forward_gflop']:.2f} GFLOP.")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("NAPARI_ATTUNET_DATA", DEFAULT_DATA)))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="+", default=None, choices=list(BENCHMARKS),
                        help="run only these benchmarks (their results replace those in --out)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores visible",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    from napari_attunet import load_model

    model = load_model(device="cpu")
    runs = {
        "segment": lambda: bench_segment_vs_monai(model, release_size_photo(args.data), args.repeats),
        "framings": lambda: bench_framings(model, args.data, args.repeats),
        "attention": lambda: bench_attention_overhead(model, args.repeats * 3),
        "flops": lambda: bench_flops(model, args.repeats * 3),
        "memory": bench_peak_memory,
        "training": lambda: bench_training_epoch(args.data),
        "training_step": lambda: bench_training_step(max(3, args.repeats // 2)),
        "training_log": training_log_summary,
    }
    if args.only:
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        results = {**previous, **results, "partial_run": args.only}
    for name in args.only or BENCHMARKS:
        results[name] = runs[name]()
        print(json.dumps({name: results[name]}), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if all(name in results for name in BENCHMARKS):
        print(markdown(results))
    return 0


BENCHMARKS = ("segment", "framings", "attention", "flops", "memory", "training", "training_step", "training_log")


if __name__ == "__main__":
    sys.exit(main())
