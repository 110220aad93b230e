"""Which mask shape post-processing to ship, decided on the Drishti-GS1 *training* split.

    python training/shape_study.py [--split train] [--weights FILE]

For every image the pipeline runs once (and once more with mirror test-time
augmentation); the masks are then post-processed in each candidate way and scored
(mean per-image Dice of disc and cup, vCDR error against the masks):

* ``components``: largest component, holes filled (no shape prior)
* ``convex``: its convex hull
* ``ellipse``: the ellipse fitted to its outline (robust RANSAC fit: a leak along a
  vessel does not pull the ellipse)
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from _study import REPO, study_parser


def main() -> int:
    from napari_attunet import load_model
    from napari_attunet.datasets import load_drishti
    from napari_attunet.inference import Segmenter, image_tensor
    from napari_attunet.measure import dice, measure
    from napari_attunet.postprocessing import SHAPES

    args = study_parser(__doc__).parse_args()
    torch.set_num_threads(2)
    model = load_model(args.weights, device="cpu")
    samples = load_drishti(args.data, args.split)
    report = {}
    for tta in (False, True):
        segmenter = Segmenter(model, torch.device("cpu"), tta=tta, shape="components")
        scores = {name: {"od": [], "oc": [], "vcdr": []} for name in SHAPES}
        for sample in samples:
            result = segmenter.segment_tensor(image_tensor(sample.image, "cpu"), attention=False)
            truth = measure(sample.disc, sample.cup).vcdr
            for name, make in SHAPES.items():
                disc = make(result.disc_probability > 0.5)
                cup = make((result.cup_probability > 0.5) & disc) & disc
                scores[name]["od"].append(dice(disc, sample.disc))
                scores[name]["oc"].append(dice(cup, sample.cup))
                scores[name]["vcdr"].append(abs(measure(disc, cup).vcdr - truth))
        for name, values in scores.items():
            key = f"{name}{' + mirror TTA' if tta else ''}"
            report[key] = {k: float(np.nanmean(v)) for k, v in values.items()}
            print(f"{key:26s} OD {report[key]['od']:.4f}  OC {report[key]['oc']:.4f}  "
                  f"vCDR MAE {report[key]['vcdr']:.4f}", flush=True)
    out = args.out or REPO / "training" / f"shape_study_{args.split}.json"
    out.write_text(json.dumps({"split": args.split, "weights": model.weights_info.name, "results": report},
                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
