"""The stress suite: a weights file on every framing users have, crossed with other cameras.

    python training/stress_test.py [--weights FILE] [--split test|train] [--out FILE.json]
                                   [--images N] [--tta] [--threads 2]

Transforms the Drishti-GS1 images of ``--split`` *and* their masks alike (``variants.py``) and runs
the full pipeline (`Segmenter`, default settings) on each:

* framings, camera as taken: the full photo; full-field padding (disc about a tenth of the
  width); squares of k = 2.0, 1.6, 1.4 and 1.25 disc diameters around the disc, resized to
  350 px and at the photo's own resolution ("native");
* cameras (blur, colour cast, gamma 1.6, grayscale, JPEG q30, low resolution /4) crossed with
  four framings: full photo, full field, k = 1.6 and k = 1.25 (350 px);
* photos without a disc: a square of 2 disc diameters centred 3 disc diameters from the disc,
  towards the macula (the answer should be "no optic disc found");
* `skimage.data.retina()` (its disc is near x 240, y 650).

It prints one line per variant (mean per-image OD and OC Dice, vCDR MAE, discs missed, share of
images flagged "low confidence") and writes every image's row (Dice, confidence, flags) to the
JSON file that ``training/confidence_study.py`` reads.  It takes about 10 to 20 minutes per
weights file on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from _study import REPO, study_parser
from variants import CAMERAS, frame, recolour

CROPS = ["k=2.0", "k=1.6", "k=1.4", "k=1.25"]
FRAMINGS = ["full photo", "full field", *CROPS, *(f"{k} native" for k in CROPS)]
CAMERA_FRAMINGS = ["full photo", "full field", "k=1.6", "k=1.25"]


def variants() -> list[tuple[str, str]]:
    """(framing, camera) pairs of the suite."""
    pairs = [(framing, "as taken") for framing in FRAMINGS]
    pairs += [(framing, camera) for camera in CAMERAS if camera != "as taken" for framing in CAMERA_FRAMINGS]
    return pairs


def no_disc_crop(sample):
    """A square of 2 disc diameters centred 3 diameters from the disc, towards the photo's centre."""
    from napari_attunet.datasets import make_sample
    from napari_attunet.preprocessing import disc_geometry

    cy, cx, diameter = disc_geometry(sample.disc)
    height, width = sample.disc.shape
    direction = -1.0 if cx > width / 2 else 1.0
    x = int(np.clip(cx + direction * 3 * diameter, diameter, width - diameter))
    y = int(np.clip(cy, diameter, height - diameter))
    half = int(diameter)
    cut = (slice(y - half, y + half), slice(x - half, x + half))
    return make_sample(sample.name, sample.image[cut], sample.disc[cut], sample.cup[cut])


def run(weights, data, split: str, images: int | None, tta: bool = False) -> dict:
    from napari_attunet import load_model, segment
    from napari_attunet.datasets import load_drishti
    from napari_attunet.evaluation import score_sample, summarise
    from napari_attunet.inference import LOW_CONFIDENCE_MESSAGE, Segmenter, image_tensor

    model = load_model(weights, device="cpu")
    segmenter = Segmenter(model, torch.device("cpu"), tta=tta)
    samples = load_drishti(data, split)[:images]
    report = {"weights": model.weights_info.name, "weights_sha256": model.weights_info.sha256, "split": split,
              "tta": tta,
              "images": [s.name for s in samples], "variants": {}, "rows": []}
    print(f"{'framing':14s} {'camera':18s} {'OD':>6s} {'OC':>6s} {'MAE':>6s} {'missed':>6s} {'low conf':>8s}")
    for framing, camera in variants():
        started = time.perf_counter()
        rows = []
        for sample in samples:
            variant = recolour(frame(sample, framing), camera)
            row = score_sample(segmenter, variant)
            row.update(framing=framing, camera=camera)
            rows.append(row)
        summary = summarise(rows)
        summary["low_confidence"] = sum(LOW_CONFIDENCE_MESSAGE in r["status"] for r in rows)
        summary["seconds"] = time.perf_counter() - started
        report["variants"][f"{framing} | {camera}"] = summary
        report["rows"].extend(rows)
        print(f"{framing:14s} {camera:18s} {summary['dice_od']:6.3f} {summary['dice_oc']:6.3f} "
              f"{summary['vcdr_abs_error']:6.3f} {summary['discs_not_found']:6d} {summary['low_confidence']:8d}",
              flush=True)
    false_discs = []
    for sample in samples:
        result = segmenter.segment_tensor(image_tensor(no_disc_crop(sample).image, segmenter.device),
                                          attention=False)
        if result.disc_found:
            false_discs.append(sample.name)
    report["no_disc_crops"] = {"images": len(samples), "disc_reported": false_discs}
    print(f"no-disc crops: a disc reported on {len(false_discs)} of {len(samples)}", flush=True)

    import skimage.data

    result = segment(skimage.data.retina(), model, device="cpu", attention=False)
    m = result.measurements
    report["retina"] = {"disc_found": m.disc_found, "centre_x": m.disc_centre_x, "centre_y": m.disc_centre_y,
                        "vertical_diameter": m.disc_vertical_diameter,
                        "horizontal_diameter": m.disc_horizontal_diameter, "vcdr": m.vcdr,
                        "confidence": result.confidence}
    print("skimage.data.retina():", json.dumps(report["retina"]), flush=True)
    return report


def main() -> int:
    parser = study_parser(__doc__, "test", choices=["test", "train"])
    parser.add_argument("--images", type=int, default=None, help="only the first N images (a quick look)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tta", action="store_true", help="mirror test-time augmentation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = run(args.weights, args.data, args.split, args.images, args.tta)
    out = args.out or REPO / "training" / f"stress_{args.split}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
