"""Generalisation checks of a weights file on transformed Drishti-GS1 test images.

    python training/stress_test.py [--weights FILE] [--data DIR] [--split test|validation]
                                   [--out training/stress_test.json]

Each variant transforms the 51 test images (or, with ``--split validation``, the training
images the weights held out for validation, which may be used to compare candidate
weights without looking at the test split) *and* their masks the same way, then runs
the full pipeline (`segment`) and reports mean per-image Dice of disc and cup and the
vCDR error against the transformed masks:

* original
* recoloured (channel gains 0.75 / 1.1 / 1.35: a bluer, darker-red camera)
* gamma 0.6 and gamma 1.6, contrast halved around the mean
* grayscale (luminance)
* JPEG quality 40
* tight crop: a square of 2 disc diameters around the annotated disc (like public
  disc-centred crop datasets)
* full-field framing: the photo shrunk by 2 and placed off-centre on a black canvas
  4 disc diameters wider, so the disc is about a tenth of the width (a 45-degree photo)

It also segments `skimage.data.retina()` and reports the disc found there (its disc
is centred near x = 230, y = 650, about 160 px wide and 165-175 px tall, read by eye).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _study import REPO, study_parser


def recolour(image):
    return np.clip(image * np.array([0.75, 1.1, 1.35]), 0, 255).astype(np.uint8)


def gamma(value):
    return lambda image: (255 * (image / 255.0) ** value).astype(np.uint8)


def low_contrast(image):
    mean = image.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + 0.5 * (image - mean), 0, 255).astype(np.uint8)


def grayscale(image):
    return (image @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)


def jpeg(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=40)
    return np.asarray(Image.open(buffer))


PHOTOMETRIC = {"recoloured": recolour, "gamma 0.6": gamma(0.6), "gamma 1.6": gamma(1.6),
               "contrast x0.5": low_contrast, "grayscale": grayscale, "JPEG q40": jpeg}


def disc_box(disc: np.ndarray, factor: float) -> tuple[int, int, int, int]:
    from napari_attunet.preprocessing import disc_geometry

    cy, cx, diameter = disc_geometry(disc)
    half = factor * diameter / 2
    return int(cy - half), int(cx - half), int(cy + half), int(cx + half)


def tight_crop(sample):
    top, left, bottom, right = disc_box(sample.disc, 2.0)
    top, left = max(top, 0), max(left, 0)
    cut = (slice(top, bottom), slice(left, right))
    return sample.image[cut], sample.disc[cut], sample.cup[cut]


def full_field(sample):
    from napari_attunet.preprocessing import disc_geometry

    image = sample.image[::2, ::2]
    disc, cup = sample.disc[::2, ::2], sample.cup[::2, ::2]
    cy, cx, diameter = disc_geometry(disc)
    side = max(int(10 * diameter), max(image.shape[:2]) + 1)
    canvas = np.zeros((side, side, 3), np.uint8)
    # Disc at about a quarter of the width from the left, like a 45-degree photo of a right eye.
    top = max(0, min(side - image.shape[0], int(side / 2 - cy)))
    left = max(0, min(side - image.shape[1], int(side / 4 - cx)))
    out = [canvas, np.zeros((side, side), bool), np.zeros((side, side), bool)]
    for target, source in zip(out, (image, disc, cup)):
        target[top : top + source.shape[0], left : left + source.shape[1]] = source
    return tuple(out)


def run(weights, data: Path, split: str = "test") -> dict:
    from napari_attunet import load_model, segment
    from napari_attunet.datasets import load_drishti, make_sample
    from napari_attunet.evaluation import score_sample, summarise
    from napari_attunet.inference import Segmenter

    model = load_model(weights, device="cpu")
    segmenter = Segmenter(model, torch.device("cpu"))
    if split == "validation":
        held_out = set(model.weights_info.metadata.get("training", {}).get("validation_images", []))
        samples = [s for s in load_drishti(data, "train") if s.name in held_out]
        if not samples:
            raise SystemExit(f"{weights}: its metadata names no validation images of this dataset")
    else:
        samples = load_drishti(data, "test")
    report = {"weights": model.weights_info.name, "weights_sha256": model.weights_info.sha256, "split": split,
              "images": [s.name for s in samples], "variants": {}}

    def score(name, transformed):
        started = time.perf_counter()
        rows = [score_sample(segmenter, s) for s in transformed]
        summary = summarise(rows)
        summary["seconds"] = time.perf_counter() - started
        report["variants"][name] = summary
        print(f"{name:16s} OD {summary['dice_od']:.4f}  OC {summary['dice_oc']:.4f}  "
              f"vCDR MAE {summary['vcdr_abs_error']:.4f}  no disc: {summary['discs_not_found']}", flush=True)

    score("original", samples)
    for name, transform in PHOTOMETRIC.items():
        score(name, [make_sample(s.name, transform(s.image), s.disc, s.cup) for s in samples])
    score("tight crop", [make_sample(s.name, *tight_crop(s)) for s in samples])
    score("full-field", [make_sample(s.name, *full_field(s)) for s in samples])

    import skimage.data

    result = segment(skimage.data.retina(), model, device="cpu", attention=False)
    m = result.measurements
    report["retina"] = {"disc_found": m.disc_found, "centre_x": m.disc_centre_x, "centre_y": m.disc_centre_y,
                        "vertical_diameter": m.disc_vertical_diameter,
                        "horizontal_diameter": m.disc_horizontal_diameter, "vcdr": m.vcdr}
    print("skimage.data.retina():", json.dumps(report["retina"]))
    return report


def main() -> int:
    args = study_parser(__doc__, "test", choices=["test", "validation"]).parse_args()
    torch.set_num_threads(2)
    report = run(args.weights, args.data, args.split)
    (args.out or REPO / "training" / "stress_test.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
