"""Choosing the fine-tuning recipe on the adaptation photos alone: a comparison of recipes.

    python training/adaptation_recipes.py [--camera mild|dim] [--recipes NAME ...] [--out FILE.json]
                                          [--threads 2] [--summary]

A user who adapts the weights to a new camera has only their own annotated photos, so the recipe
is chosen the way they could choose it: on the adaptation pool of the simulated camera of
``adaptation_study.py`` (25 photos), by fine-tuning on 10 of them and scoring on the other 15,
twice (the first 10 and the last 10 by name).  The 26 evaluation photos of that study are not
read here, so the curve it reports stays a fair measurement of the recipe chosen.  The pool is
that of the study's ``--split name``: the first 25 photos by name, nearly all glaucomatous eyes
with large cups, so recipes are compared on such eyes only.

Each recipe overrides fields of ``TrainConfig.fine_tuning``; every run is timed.  The blends
(``keep_start``) are scored from the shipped recipe's run: blending only changes the saved
weights, not the training, so a blend of that run is what training with ``keep_start`` writes
(without a validation split, as here).  Results are
appended to the JSON file as they come, and recipes already in it are skipped, so an interrupted
run continues where it stopped.  The rule that picks the recipe, fixed before the runs: the
highest mean OC Dice over the two splits, among recipes whose mean OD Dice is at most
``OD_TOLERANCE`` below the best recipe's (the disc is read well already; the cup is what fine-tuning
has to improve).  ``--summary`` prints the table and the pick from the JSON file.

``--camera dim`` runs the comparison on the pool of the study's "dim" camera (default output
``training/adaptation_recipes_dim.json``), a camera the default weights read less well;
``--recipes`` limits a run to some recipes (the shipped one brings its blends).  With both
files present, ``--summary`` also prints the means over the two cameras and the rule's pick
among the recipes run on both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from _study import DRISHTI, REPO
from adaptation_study import CAMERAS, blend_file, score, split_photos

SHIPPED = "shipped: all layers, lr 3e-4"
UNBLENDED = {"keep_start": 0.0}  # every recipe is trained and scored as the network it ends with
RECIPES = {
    SHIPPED: UNBLENDED,
    "all layers, lr 1e-4": {**UNBLENDED, "learning_rate": 1e-4},
    "encoder frozen, lr 3e-4": {**UNBLENDED, "freeze_encoder": True},
    "encoder frozen, lr 1e-3": {**UNBLENDED, "freeze_encoder": True, "learning_rate": 1e-3},
    "cup distillation 1.0": {**UNBLENDED, "cup_distillation": 1.0},
}
BLENDS = (0.25, 0.5, 0.75)
"""``keep_start`` values scored from the shipped recipe's run."""


def blend_name(keep_start: float) -> str:
    return f"shipped, blended with the start (keep_start {keep_start})"


TRAIN_COUNT = 10
OD_TOLERANCE = 0.005


def summarise(rows: list[dict]) -> tuple[list[dict], str]:
    """Per recipe, the means over the splits it ran on; and the recipe the rule picks."""
    table = []
    for name in dict.fromkeys(r["recipe"] for r in rows):
        runs = [r for r in rows if r["recipe"] == name]
        table.append({"recipe": name, "splits": len(runs),
                      **{key: round(sum(r[key] for r in runs) / len(runs), 4)
                         for key in ("dice_od", "dice_oc", "vcdr_abs_error", "minutes")}})
    return table, pick_by_rule(table)


def pick_by_rule(table: list[dict]) -> str:
    """The highest OC Dice among recipes within ``OD_TOLERANCE`` OD Dice of the best (no fine-tuning excluded)."""
    candidates = [t for t in table if t["recipe"] != "no fine-tuning"]
    best_od = max(t["dice_od"] for t in candidates)
    return max((t for t in candidates if t["dice_od"] >= best_od - OD_TOLERANCE), key=lambda t: t["dice_oc"])["recipe"]


def results_file(camera: str) -> Path:
    return REPO / "training" / ("adaptation_recipes.json" if camera == "mild" else f"adaptation_recipes_{camera}.json")


def print_table(table: list[dict], pick: str) -> None:
    print("| recipe | splits | OD Dice | OC Dice | vCDR MAE | minutes |\n|---|---|---|---|---|---|")
    for t in table:
        print(f"| {t['recipe']} | {t['splits']} | {t['dice_od']:.3f} | {t['dice_oc']:.3f} | "
              f"{t['vcdr_abs_error']:.3f} | {t['minutes']:.1f} |")
    print(f"picked by the rule: {pick}\n")


def print_summary(path: Path) -> None:
    """The table and the pick of ``path``; with both cameras' files, their means and the pick on them."""
    rows = json.loads(path.read_text())["rows"]
    print_table(*summarise(rows))
    files = [results_file(camera) for camera in sorted(CAMERAS)]
    if all(f.exists() for f in files):
        tables = [{t["recipe"]: t for t in summarise(json.loads(f.read_text())["rows"])[0]} for f in files]
        both = [name for name in tables[0] if all(name in t for t in tables)]
        means = [{"recipe": name, "splits": sum(t[name]["splits"] for t in tables),
                  **{key: sum(t[name][key] for t in tables) / len(tables)
                     for key in ("dice_od", "dice_oc", "vcdr_abs_error", "minutes")}} for name in both]
        print("means over the cameras " + ", ".join(sorted(CAMERAS)) + ":")
        print_table(means, pick_by_rule(means))


def splits(pool):
    """(name, fine-tuning photos, scoring photos): the first and the last ``TRAIN_COUNT`` of the pool."""
    return [("first", pool[:TRAIN_COUNT], pool[TRAIN_COUNT:]),
            ("last", pool[-TRAIN_COUNT:], pool[:-TRAIN_COUNT])]


def main() -> int:
    from napari_attunet.datasets import load_drishti
    from napari_attunet.training import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DRISHTI)
    parser.add_argument("--camera", choices=sorted(CAMERAS), default="mild")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=None, help="default: all")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: training/adaptation_recipes.json (mild), adaptation_recipes_dim.json (dim)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--summary", action="store_true", help="print the table and the pick; run nothing")
    args = parser.parse_args()
    args.out = args.out or results_file(args.camera)
    if args.summary:
        print_summary(args.out)
        return 0
    torch.set_num_threads(args.threads)
    samples = [CAMERAS[args.camera](s) for s in sorted(load_drishti(args.data, "test"), key=lambda s: s.name)]
    pool, _ = split_photos(samples, "name")  # the study's pool by name; its evaluation photos are not used
    done = json.loads(args.out.read_text()) if args.out.exists() else {"train_count": TRAIN_COUNT, "rows": []}
    seen = {(r["recipe"], r["split"]) for r in done["rows"]}

    def record(row: dict) -> None:
        done["rows"].append(row)
        temporary = args.out.with_suffix(".tmp")
        temporary.write_text(json.dumps(done, indent=1) + "\n")
        temporary.replace(args.out)
        print(json.dumps(row), flush=True)

    for split, tune, held in splits(pool):
        if ("no fine-tuning", split) not in seen:
            record({"recipe": "no fine-tuning", "split": split, "minutes": 0.0, **score(None, held)})
        for name, overrides in RECIPES.items():
            if args.recipes is not None and name not in args.recipes:
                continue
            blends_missing = name == SHIPPED and any((blend_name(b), split) not in seen for b in BLENDS)
            if (name, split) in seen and not blends_missing:
                continue
            config = TrainConfig.fine_tuning(len(tune), device="cpu", threads=args.threads, **overrides)
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "adapted.safetensors"
                started = time.perf_counter()
                train(tune, out, config)
                minutes = (time.perf_counter() - started) / 60
                row = {"split": split, "overrides": overrides, "minutes": round(minutes, 2),
                       "tuned_on": [s.name for s in tune]}
                scores = score(out, held)
                if (name, split) not in seen:
                    record({"recipe": name, **row, **scores})
                else:  # a rerun for the blends: recorded beside, to show the run repeats
                    print(json.dumps({"rerun of": name, **row, **scores}), flush=True)
                if blends_missing:
                    for keep_start in BLENDS:
                        if (blend_name(keep_start), split) not in seen:
                            record({"recipe": blend_name(keep_start), **row, "overrides": {"keep_start": keep_start},
                                    **score(blend_file(out, keep_start), held)})
    return 0



if __name__ == "__main__":
    sys.exit(main())
