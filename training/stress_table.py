"""The model card's stress table: two stress-suite runs side by side.

    python training/stress_table.py training/stress_test.json training/stress_test_previous_default.json

Per variant: mean per-image OD and OC Dice and vCDR MAE of the first run, discs missed, images
below the low-confidence threshold (the package's ``LOW_CONFIDENCE``), and the second run's OD /
OC Dice and misses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from napari_attunet.inference import LOW_CONFIDENCE


def main() -> int:
    new, old = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    flagged = {}
    for row in new["rows"]:
        key = f"{row['framing']} | {row['camera']}"
        flagged[key] = flagged.get(key, 0) + (row["confidence"] < LOW_CONFIDENCE)
    images = len(new["images"])
    print(f"| framing | camera | OD Dice | OC Dice | vCDR MAE | no disc found | low confidence (< {LOW_CONFIDENCE}) "
          "| previous default: OD / OC, missed |")
    print("|---|---|---|---|---|---|---|---|")
    for key, s in new["variants"].items():
        framing, camera = key.split(" | ")
        o = old["variants"][key]
        print(f"| {framing} | {camera} | {s['dice_od']:.3f} | {s['dice_oc']:.3f} | {s['vcdr_abs_error']:.3f} | "
              f"{s['discs_not_found']} of {images} | {flagged[key]} | "
              f"{o['dice_od']:.3f} / {o['dice_oc']:.3f}, {o['discs_not_found']} |")
    for name, run in (("new", new), ("previous", old)):
        nd = run["no_disc_crops"]
        print(f"\n{name}: no-disc crops with a disc reported: {len(nd['disc_reported'])} of {nd['images']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
