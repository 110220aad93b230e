"""Which cup threshold to ship with the default weights, decided on the Drishti-GS1 *training* split.

    python training/threshold_study.py [--weights FILE] [--split train] [--apply]

Why: at threshold 0.5 the shipped weights' vCDR came out below the masks' for most test
images (the cup is drawn short vertically).  A threshold must not be chosen on the test
split, so this script chooses it on the 50 training images, by the rule of
``napari_attunet.calibration`` (fixed before this study was first run):

* candidates: cup thresholds 0.25, 0.30, ..., 0.50 (the disc threshold stays 0.5);
* pick the candidate with the lowest vCDR mean absolute error against the masks over
  all 50 training images, among those whose mean OC Dice there is at most 0.005 below
  that of 0.5 (a threshold may trade a little overlap for a better ratio, not more);
* ties go to the candidate nearer 0.5.

45 of the 50 images were seen in training, so their probabilities are more confident
than on new photos; the 5 held-out validation images are reported separately as a check,
but are too few to decide on.  ``napari-attunet calibrate`` applies the same rule to any
weights and folder of annotated images; this script adds the breakdown by group.

``--apply`` writes the chosen thresholds into the weights file's metadata (the tensors
are unchanged), where ``segment``, the CLI and the widgets take them as defaults.
"""

from __future__ import annotations

import json
import sys

import torch
from _study import REPO, study_parser


def main() -> int:
    from napari_attunet import load_model
    from napari_attunet.calibration import RULE, calibrate, store_thresholds, summarise_thresholds
    from napari_attunet.datasets import load_dataset
    from napari_attunet.weights import default_weights_path

    parser = study_parser(__doc__)
    parser.add_argument("--apply", action="store_true", help="store the chosen thresholds in the weights file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.weights, device="cpu")
    held_out = set(model.weights_info.metadata.get("training", {}).get("validation_images", []))
    samples = load_dataset(args.data, args.split)
    calibration = calibrate(samples, model, torch.device("cpu"))
    rows = calibration["rows"]
    groups = {"all": rows,
              "seen in training": [r for r in rows if r["image"] not in held_out],
              "held-out validation": [r for r in rows if r["image"] in held_out]}
    report = {group: {str(t): s for t, s in summarise_thresholds(members).items()}
              for group, members in groups.items() if members}
    chosen = calibration["cup_threshold"]
    for group, by_threshold in report.items():
        print(f"{group} ({len(groups[group])} images)")
        for t, s in by_threshold.items():
            print(f"  cup > {t}: OC {s['oc']:.4f}  vCDR MAE {s['vcdr_mae']:.4f}  bias {s['vcdr_bias']:+.4f}  "
                  f"below masks {s['below_masks']}/{s['images']}")
    print(f"chosen cup threshold: {chosen}")
    out = args.out or REPO / "training" / f"threshold_study_{args.split}.json"
    out.write_text(json.dumps({"split": args.split, "weights": model.weights_info.name,
                               "weights_sha256": model.weights_info.sha256, "rule": RULE,
                               "chosen_cup_threshold": chosen,
                               "results": report}, indent=2) + "\n")
    if args.apply:
        target = args.weights or default_weights_path()
        source = (f"training/threshold_study.py on {len(rows)} images of {args.data.name} ({args.split} split) "
                  f"(weights SHA-256 {model.weights_info.sha256[:12]}…, rule in the script's docstring)")
        digest = store_thresholds(model, target, calibration["disc_threshold"], chosen, source)
        print(f"{target}: thresholds disc {calibration['disc_threshold']}, cup {chosen}; sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
