"""Adapting the weights to a new camera from a few annotated photos: Dice against images and minutes.

    python training/adaptation_study.py [--camera mild|dim] [--split matched|name] [--cup-experts 1|2|3]
                                        [--weights FILE] [--counts 5 10 20] [--draws 2] [--first-draw 0]
                                        [--out FILE.json] [--plot FILE.png] [--threads 2]
                                        [--replot [--no-minutes]] [--by-cup-size]

The "new camera" is built from the 51 Drishti-GS1 test images (never used to train the shipped
weights).  ``mild``: each is cut to a square of 1.5 disc diameters around its disc, resized to
400 px, given a colour cast (channel gains 0.8 / 1.05 / 1.3), gamma 1.3 and a slight defocus
blur, like the disc-centred photos of another clinic.  ``dim``: a tighter crop at 320 px,
underexposed with a warm cast, defocused and saved as JPEG (see :func:`dim_camera`), a camera the
default weights read less well.  25 photos are the adaptation pool, the other 26 the evaluation
set.  ``--split matched`` (the default) makes the two alike in cup size: the photos sorted by the
experts' mean vCDR go in turn to the evaluation set and the pool.  ``--split name`` (the files
written before it) takes the first 25 by name, nearly all glaucomatous eyes with large cups
(mean expert vCDR 0.78, one of 25 below 0.65), against 0.68 and 10 of 26 in the evaluation set.
For each count N and each draw, N pool photos fine-tune the weights with
the recipe that `napari-attunet train --init` uses by default (``TrainConfig.fine_tuning``), timed
on this machine, and the result is scored on the evaluation set (N = 0: the weights as they are).
Draw 0 takes N pool photos spread evenly over the pool's range of cup sizes (with ``--split name``:
the first N by name), later draws a random N (seeded), so that the curve shows how much it
depends on which photos were annotated.  Then the cup threshold is calibrated
(``napari-attunet calibrate --apply``'s rule) on the pool photos that were not fine-tuned on, as
the guide advises, and the calibrated weights are scored too: annotate, fine-tune, calibrate.
Each row also records every evaluation photo's scores and, under ``change``, the mean change per
photo from the weights as they are, with a 95% bootstrap interval (photos resampled): with 26
photos, whether a change is larger than chance.  The recipe blends the saved network with the
starting one (``keep_start``); each run trains without blending, blends the result as training
would save it, and scores both; ``--blends`` adds other values of ``keep_start``, scored from
the same run, under ``blends`` (files written before it keep the unblended network's scores
under ``unblended``).

``--cup-experts`` simulates a clinic whose graders draw the cup differently: the cup is the area that
at least that many of Drishti-GS1's four experts marked (the shipped weights learnt 2; 1 is a more
generous cup, vCDR about 0.06 larger on the test images, 3 a stricter one, about 0.05 smaller), on
the pool and the evaluation photos alike.  It asks whether fine-tuning learns a site's cup, which a
camera alone cannot ask: there, the cup the weights learnt is already the one the photos are scored on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from _study import DRISHTI, REPO
from variants import crop, jpeg


def simulated_camera(sample, k: float, size: int, gains, sigma: float, exposure: float = 1.0,
                     gamma: float = 1.0, jpeg_quality: int | None = None):
    """``sample`` cut to ``k`` disc diameters at ``size`` px, its colours scaled by ``exposure`` and the
    channel ``gains``, raised to ``gamma``, blurred by ``sigma`` px and, given a quality, saved as JPEG."""
    from scipy.ndimage import gaussian_filter

    from napari_attunet.datasets import make_sample

    framed = crop(sample, k, size)
    image = framed.image.astype(np.float32) / 255.0
    image = np.clip(image * exposure * np.array(gains), 0, 1) ** gamma
    image = (gaussian_filter(image, (sigma, sigma, 0)) * 255 + 0.5).astype(np.uint8)
    if jpeg_quality is not None:
        image = jpeg(image, jpeg_quality)
    return make_sample(sample.name, image, framed.disc, framed.cup, **sample.extra)


def new_camera(sample):
    """The "mild" camera: 1.5 disc diameters at 400 px, a blue cast, gamma 1.3, slight defocus."""
    return simulated_camera(sample, 1.5, 400, (0.8, 1.05, 1.3), sigma=1.2, gamma=1.3)


def dim_camera(sample):
    """The "dim" camera: a tighter crop (1.3 disc diameters, the disc about 77% of the width) at 320 px,
    underexposed (0.55) with a warm cast, defocused (sigma 1.5 px) and saved as JPEG at quality 50,
    like the older cameras of an outside clinic."""
    return simulated_camera(sample, 1.3, 320, (1.15, 0.85, 0.65), sigma=1.5, exposure=0.55, jpeg_quality=50)


CAMERAS = {"mild": new_camera, "dim": dim_camera}
CUP_LEVELS = {1: 64, 2: 128, 3: 191}
"""Soft-map grey level reached where at least N of the four experts marked the cup."""


def annotated_test_photos(data: Path, cup_experts: int = 2) -> list:
    """The Drishti-GS1 test photos, by name: the disc of at least two experts, the cup of ``cup_experts``."""
    from napari_attunet.datasets import load_drishti, make_sample

    samples = sorted(load_drishti(data, "test"), key=lambda s: s.name)
    if cup_experts == 2:
        return samples
    cups = {s.name: s.cup for s in load_drishti(data, "test", threshold=CUP_LEVELS[cup_experts])}
    return [make_sample(s.name, s.image, s.disc, cups[s.name], **s.extra) for s in samples]


def calibrated(weights: Path, samples) -> tuple[Path, float]:
    """``weights`` with the cup threshold calibrated on ``samples``, as ``calibrate --apply`` writes it."""
    from napari_attunet import load_model
    from napari_attunet.calibration import calibrate, store_thresholds

    model = load_model(weights, device="cpu")
    report = calibrate(samples, model, torch.device("cpu"))
    out = weights.with_name(weights.stem + "_calibrated.safetensors")
    store_thresholds(model, out, report["disc_threshold"], report["cup_threshold"], "adaptation study")
    return out, float(report["cup_threshold"])


PAIRED_KEYS = ("dice_od", "dice_oc", "vcdr_abs_error")


def score(weights, samples, per_image: bool = False) -> dict:
    """Mean scores of ``weights`` on ``samples`` (and, asked, each photo's under ``per_image``)."""
    from napari_attunet import load_model
    from napari_attunet.evaluation import score_sample, summarise
    from napari_attunet.inference import Segmenter

    segmenter = Segmenter(load_model(weights, device="cpu"), torch.device("cpu"))
    rows = [score_sample(segmenter, s) for s in samples]
    summary = summarise(rows)
    scores = {key: summary[key] for key in (*PAIRED_KEYS, "discs_not_found")}
    if per_image:
        scores["per_image"] = {key: [float(np.nan_to_num(r[key])) for r in rows] for key in PAIRED_KEYS}
    return scores


def paired_change(after: dict, before: dict, rounds: int = 2000, seed: int = 0) -> dict:
    """Mean per-photo change from ``before`` to ``after`` with a 95% bootstrap interval (photos resampled)."""
    rng = np.random.default_rng(seed)
    count = len(before["per_image"]["dice_od"])
    picks = rng.integers(0, count, size=(rounds, count))
    change = {}
    for key in PAIRED_KEYS:
        difference = np.asarray(after["per_image"][key]) - np.asarray(before["per_image"][key])
        low, high = np.percentile(difference[picks].mean(axis=1), [2.5, 97.5])
        change[key] = [round(float(difference.mean()), 4), round(float(low), 4), round(float(high), 4)]
    return change


def blend_file(tuned: Path, keep_start: float, start_weights: Path | None = None) -> Path:
    """The weights fine-tuning with ``keep_start`` writes, from those of the same run without blending
    (blending changes only what is saved, not the training)."""
    from napari_attunet.blending import blend_files

    if not keep_start:
        return tuned
    out = tuned.with_name(f"{tuned.stem}_keep_start_{keep_start}.safetensors")
    return blend_files(tuned, keep_start, out, start=start_weights)


def mean_row(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def variants(row: dict) -> dict[str, dict]:
    """The other blends scored in ``row``, by ``keep_start``."""
    found = dict(row.get("blends", {}))
    if "unblended" in row:
        found["0.0"] = row["unblended"]
    return found


def plot(rows: list[dict], path: Path, camera: str = "mild", keep_start: float = 0.0, minutes: bool = True,
         cup_experts: int = 2) -> None:
    """Dice against photos fine-tuned on; ``minutes``: annotate the training minutes (off when the
    runs shared the cores, so their times are not this machine's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({r["images"] for r in rows})
    by_count = {n: [r for r in rows if r["images"] == n] for n in counts}
    fig, ax = plt.subplots(figsize=(5.8, 4.6), dpi=120)
    for key, colour, marker, label in (("dice_od", "tab:red", "o", "optic disc"),
                                       ("dice_oc", "goldenrod", "s", "optic cup")):
        ax.plot(counts, [mean_row(by_count[n], key) for n in counts], marker + "-", color=colour,
                label=f"{label}, keep_start {keep_start}")
        for n in counts:
            ax.scatter([n] * len(by_count[n]), [r[key] for r in by_count[n]], s=12, color=colour, alpha=0.5)
    for value, style in zip(sorted({v for r in rows for v in variants(r)}), (":", "--", "-.")):
        shown = [n for n in counts if all(value in variants(r) for r in by_count[n])]
        for key, colour, label in (("dice_od", "tab:red", "optic disc"), ("dice_oc", "goldenrod", "optic cup")):
            ax.plot(shown, [float(np.mean([variants(r)[value][key] for r in by_count[n]])) for n in shown],
                    style, color=colour, label=f"{label}, keep_start {value}")
    for n in counts[1:] if minutes else []:
        ax.annotate(f"{mean_row(by_count[n], 'minutes'):.1f} min", (n, mean_row(by_count[n], "dice_od")),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("annotated photos of the new camera used for fine-tuning")
    ax.set_ylabel("Dice on 26 other photos")
    ax.set_xticks(counts)
    ax.set_ylim(round(min(r["dice_oc"] for r in rows) - 0.06, 1), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7)
    graders = "" if cup_experts == 2 else f", cup drawn by >= {cup_experts} of 4 experts"
    ax.set_title(f"Fine-tuning on the simulated '{camera}' camera{graders} (2 CPU cores; dots: draws)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def replot(path: Path, plot_path: Path, minutes: bool = True) -> None:
    record = json.loads(path.read_text())
    plot(record["rows"], plot_path, record["camera"], record["recipe"].get("keep_start", 0.0), minutes,
         record.get("cup_experts", 2))


def expert_vcdr(sample) -> float:
    return float(np.mean(sample.extra["expert_cdrs"]))


def split_photos(samples: list, how: str) -> tuple[list, list]:
    """The adaptation pool (25) and the evaluation set (26).  ``matched``: sorted by the experts' mean
    vCDR, the photos go in turn to the evaluation set and the pool, so both span the same cup sizes;
    ``name``: the first 25 by name and the rest."""
    if how == "name":
        return samples[:25], samples[25:]
    ranked = sorted(samples, key=lambda s: (expert_vcdr(s), s.name))
    return sorted(ranked[1::2], key=lambda s: s.name), sorted(ranked[0::2], key=lambda s: s.name)


SMALL_CUP = 0.65
"""Experts' mean vCDR below which ``--by-cup-size`` counts an evaluation photo's cup as small."""


def by_cup_size(path: Path, data: Path) -> None:
    """Print each run's mean change from the default weights on the evaluation photos with small
    cups and on the others, from a results file (each photo's scores are kept in it)."""
    from napari_attunet.datasets import load_drishti

    record = json.loads(path.read_text())
    vcdrs = {s.name: expert_vcdr(s) for s in load_drishti(data, "test")}
    small = np.array([vcdrs[name] < SMALL_CUP for name in record["evaluation"]])
    print(f"{path.name}: {small.sum()} evaluation photos with an expert vCDR below {SMALL_CUP}, "
          f"{(~small).sum()} others; the tuning photos' mean expert vCDR in brackets")
    print("photos  keep_start  tuning  | small cups: OD, OC, vCDR error change | others: the same")
    default = record["rows"][0]["per_image"]
    for row in record["rows"][1:]:
        tuned_on = np.mean([vcdrs[name] for name in row["tuned_on"]])
        scored = {str(record["recipe"].get("keep_start", 0.0)): row, **variants(row)}
        for keep_start, scores in sorted(scored.items()):
            if "per_image" not in scores:
                continue
            change = {key: np.asarray(scores["per_image"][key]) - np.asarray(default[key]) for key in PAIRED_KEYS}
            parts = [" ".join(f"{change[key][mask].mean():+.3f}" for key in PAIRED_KEYS) for mask in (small, ~small)]
            print(f"{row['images']:>6}  {keep_start:>10}  ({tuned_on:.2f})  | {parts[0]:>22} | {parts[1]}")


def chosen(pool: list, count: int, draw: int, how: str = "matched") -> list:
    """Draw 0: ``count`` pool photos spread evenly over its cup sizes (``how="name"``: the first ``count``
    by name); later draws: a random ``count`` (seeded by the draw)."""
    if draw == 0 and how == "name":
        return pool[:count]
    if draw == 0:
        ranked = sorted(pool, key=lambda s: (expert_vcdr(s), s.name))
        picks = np.unique(np.round(np.linspace(0, len(pool) - 1, count)).astype(int))
        return sorted((ranked[i] for i in picks), key=lambda s: s.name)
    order = np.random.default_rng(draw).permutation(len(pool))
    return [pool[i] for i in sorted(order[:count])]


RECIPE_KEYS = ("learning_rate", "freeze_encoder", "batch_size", "weight_decay", "warmup_epochs", "keep_start",
               "cup_distillation")


def write_record(args, init: str, pool: list, evaluation: list, rows: list[dict]) -> None:
    from napari_attunet.training import TrainConfig

    recipe = {key: value for key, value in asdict(TrainConfig.fine_tuning(max(args.counts))).items()
              if key in RECIPE_KEYS}
    record = {"weights": init, "camera": args.camera, "split": args.split, "cup_experts": args.cup_experts,
              "recipe": recipe,
              "pool": [s.name for s in pool],
              "evaluation": [s.name for s in evaluation], "rows": rows}
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(args.out)


def main() -> int:
    from napari_attunet.training import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DRISHTI)
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    parser.add_argument("--counts", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--draws", type=int, default=2, help="sets of annotated photos per count")
    parser.add_argument("--first-draw", type=int, default=0,
                        help="start at this draw (0: the photos spread over the cup sizes; then random ones)")
    parser.add_argument("--camera", choices=sorted(CAMERAS), default="mild")
    parser.add_argument("--split", choices=("matched", "name"), default="matched",
                        help="pool and evaluation photos alike in cup size (default), or split by name")
    parser.add_argument("--cup-experts", type=int, choices=sorted(CUP_LEVELS), default=2,
                        help="the cup is what at least this many of the four experts marked (default 2)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: training/adaptation_study[_matched][_dim][_cupN].json, after the options")
    parser.add_argument("--plot", type=Path, default=None,
                        help="default: docs/images/adaptation[_matched][_dim][_cupN].png, after the options")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blends", type=float, nargs="*", default=[0.0, 0.5],
                        help="other keep_start values scored from each run (default: 0 and 0.5)")
    parser.add_argument("--replot", action="store_true", help="draw the plot from the JSON file; run nothing")
    parser.add_argument("--by-cup-size", action="store_true",
                        help="print the changes on small cups and on the others from the JSON file; run nothing")
    parser.add_argument("--no-minutes", action="store_true",
                        help="with --replot: leave out the minutes (runs that shared the cores)")
    args = parser.parse_args()
    suffix = ("" if args.split == "name" else "_matched") + ("" if args.camera == "mild" else f"_{args.camera}") + (
        "" if args.cup_experts == 2 else f"_cup{args.cup_experts}")
    args.out = args.out or REPO / "training" / f"adaptation_study{suffix}.json"
    args.plot = args.plot or REPO / "docs" / "images" / f"adaptation{suffix}.png"
    if args.replot:
        replot(args.out, args.plot, minutes=not args.no_minutes)
        return 0
    if args.by_cup_size:
        by_cup_size(args.out, args.data)
        return 0
    torch.set_num_threads(args.threads)
    samples = [CAMERAS[args.camera](s) for s in annotated_test_photos(args.data, args.cup_experts)]
    pool, evaluation = split_photos(samples, args.split)
    rows = [{"images": 0, "draw": 0, "minutes": 0.0, **score(args.weights, evaluation, per_image=True)}]
    print(json.dumps(rows[-1]), flush=True)
    init = "default" if args.weights is None else str(args.weights)
    with tempfile.TemporaryDirectory() as folder:
        for draw in range(args.first_draw, args.first_draw + args.draws):
            for count in args.counts:
                tuned = chosen(pool, count, draw, args.split)
                others = [s for s in pool if s.name not in {t.name for t in tuned}]
                unblended = Path(folder) / f"adapted_{count}_{draw}_unblended.safetensors"
                config = TrainConfig.fine_tuning(count, init_weights=init, device="cpu", threads=args.threads)
                # Trained unblended, then blended as training with keep_start would save it: both are scored.
                started = time.perf_counter()
                train(tuned, unblended, replace(config, keep_start=0.0))
                out = blend_file(unblended, config.keep_start, args.weights)
                minutes = (time.perf_counter() - started) / 60
                row = {"images": count, "draw": draw, "tuned_on": [s.name for s in tuned],
                       "minutes": round(minutes, 2), "epochs": config.epochs,
                       **score(out, evaluation, per_image=True)}
                row["change"] = paired_change(row, rows[0])
                row["blends"] = {}
                for keep_start in sorted(set(args.blends) - {config.keep_start}):
                    other = blend_file(unblended, keep_start, args.weights)
                    row["blends"][str(keep_start)] = score(other, evaluation, per_image=True)
                    row["blends"][str(keep_start)]["change"] = paired_change(row["blends"][str(keep_start)], rows[0])
                if others:
                    calibrated_weights, cup_threshold = calibrated(out, others)
                    row["calibrated"] = {"on": len(others), "cup_threshold": cup_threshold,
                                         **score(calibrated_weights, evaluation)}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("per_image", "blends")}), flush=True)
                write_record(args, init, pool, evaluation, rows)  # so far: an interrupted run keeps its rows
                for path in Path(folder).glob("*.safetensors"):
                    path.unlink()
    write_record(args, init, pool, evaluation, rows)
    plot(rows, args.plot, args.camera, TrainConfig.fine_tuning(max(args.counts)).keep_start,
         cup_experts=args.cup_experts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
