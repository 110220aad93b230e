"""How a ``segment`` run survives ``kill -9``: kill at random moments, resume, count what broke.

    python benchmarks/batch_kill_resume.py [--trials 20] [--images 6] [--parallel 1] [--seed 0]
                                            [--json benchmarks/batch_kill_resume.json]

Each trial starts ``napari-attunet segment`` (a fresh output folder, attention maps and
overlays asked for: 5 PNGs and a record per image) and sends SIGKILL at a random moment:
after a random number k of finished images (2 to n-1), plus a random fraction of one
image's time (so the kill may land in reading, the network, or writing files); it
does not depend on how fast the machine is.  It then checks the
folder: every non-hidden PNG must decode, every record must parse and list complete
outputs.  It then re-runs the same command and checks that it exits 0, that every image
has exactly one record and one table row, that the images recorded before the kill were
not redone, and that no temporary file is left.  A tiny seeded random network stands in
for the shipped weights: it makes each image fast, so a larger share of the run is spent
writing files, where a kill can do harm.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from napari_attunet.run_records import OutputFolder  # noqa: E402 (after the path set-up)


def make_inputs(folder: Path, count: int, seed: int) -> Path:
    """``count`` photo-like PNGs (crops of scikit-image's retina) and a tiny random network."""
    import skimage.data
    import torch
    from PIL import Image

    from napari_attunet.model import AttentionUNet
    from napari_attunet.weights import save_weights

    rng = np.random.default_rng(seed)
    retina = skimage.data.retina()
    photos = folder / "photos"
    photos.mkdir(parents=True)
    for k in range(count):
        top, left = rng.integers(0, 400, 2)
        Image.fromarray(retina[top : top + 1000 : 2, left : left + 1000 : 2]).save(photos / f"eye_{k:03d}.png")
    torch.manual_seed(seed)
    weights = folder / "tiny.safetensors"
    save_weights(AttentionUNet(base_channels=4, depth=3).eval(), weights)
    return weights


def command(photos: Path, out: Path, weights: Path) -> list[str]:
    return [sys.executable, "-m", "napari_attunet", "segment", str(photos), "--out", str(out), "--weights",
            str(weights), "--device", "cpu", "--attention", "--overlay"]


ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def records(out: Path) -> dict[str, dict]:
    return {r["relative"]: r for r in OutputFolder(out).iter_records()}


def broken_files(out: Path) -> list[str]:
    """Output PNGs that do not decode, records that do not parse or list missing outputs, a bad table."""
    from PIL import Image

    broken = []
    for path in out.rglob("*.png"):
        if not path.name.startswith("."):
            try:
                with Image.open(path) as image:
                    image.load()
            except Exception as error:  # noqa: BLE001 - any failure to decode is what is counted
                broken.append(f"{path}: {error}")
    folder = OutputFolder(out)
    for path in folder.records_dir.rglob("*.json") if folder.records_dir.exists() else []:
        try:
            json.loads(path.read_bytes())
        except ValueError as error:
            broken.append(f"{path}: {error}")
    for record in records(out).values():
        stem = Path(record["relative"]).with_suffix("")
        for kind, size in record["outputs"].items():
            path = out / f"{stem}_{kind}.png"
            if not path.is_file() or path.stat().st_size != size:
                broken.append(f"{path}: listed in a record but missing or of another size")
    if folder.table_path.exists():
        try:
            with open(folder.table_path, encoding="utf-8") as file:
                list(csv.DictReader(file))
        except (ValueError, csv.Error) as error:
            broken.append(f"{folder.table_path}: {error}")
    return broken


def temporaries(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.name.endswith((".tmp", ".stale")))


def trial(photos: Path, weights: Path, out: Path, count: int, chooser: random.Random) -> dict:
    """Kill after a random number of finished images plus a random part of one image's time, then resume."""
    target = chooser.randint(2, count - 1)
    fraction = chooser.random()
    start = time.perf_counter()
    child = subprocess.Popen(command(photos, out, weights), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    seen: list[float] = []  # when the 1st, 2nd, ... record appeared
    while child.poll() is None and len(seen) < target:
        found = len(records(out))
        seen.extend([time.perf_counter() - start] * (found - len(seen)))
        time.sleep(0.005)
    per_image = (seen[-1] - seen[0]) / (len(seen) - 1) if len(seen) > 1 else 0.0  # one image's time
    kill_at = time.perf_counter() - start + fraction * per_image
    while child.poll() is None and time.perf_counter() - start < kill_at:
        time.sleep(0.002)
    finished_first = child.poll() is not None
    if not finished_first:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = records(out)
    broken_after_kill = broken_files(out)
    temps_after_kill = temporaries(out)
    resumed = subprocess.run(command(photos, out, weights), env=ENV, capture_output=True, text=True)
    after = records(out)
    with open(out / "results.csv", encoding="utf-8") as file:
        rows = [row["image"] for row in csv.DictReader(file)]
    expected = {f"eye_{k:03d}.png" for k in range(count)}
    return {
        "kill_after_records": target,
        "kill_at_fraction_of_an_image": round(fraction, 3),
        "kill_at_s": round(kill_at, 3),
        "run_ended_before_kill": finished_first,
        "records_before_kill": len(before),
        "broken_files_after_kill": len(broken_after_kill),
        "broken_examples": broken_after_kill[:3],
        "temporary_files_after_kill": temps_after_kill,
        "resume_exit_status": resumed.returncode,
        "lost_images": len(expected - set(after)),
        "table_rows": len(rows),
        "duplicated_rows": len(rows) - len(set(rows)),
        "missing_rows": len(expected - set(rows)),
        "finished_images_redone": sum(after.get(k) != r for k, r in before.items()),
        "images_segmented_by_resume": len(expected) - len(before),
        "broken_files_after_resume": len(broken_files(out)),
        "temporary_files_after_resume": temporaries(out),
        "errors_after_resume": sum(r["row"]["status"].startswith("error") for r in after.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--parallel", type=int, default=1, help="trials run at the same time (own folders)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "batch_kill_resume.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-resume-") as temporary:
        work = Path(temporary)
        weights = make_inputs(work, args.images, args.seed)
        photos = work / "photos"
        choosers = [random.Random(f"{args.seed}-{index}") for index in range(args.trials)]

        def one(index: int) -> dict:
            result = trial(photos, weights, work / f"trial_{index:02d}", args.images, choosers[index])
            print(json.dumps(result), flush=True)
            return result

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            trials = list(pool.map(one, range(args.trials)))
    totals = {key: sum(t[key] for t in trials) for key in (
        "broken_files_after_kill", "lost_images", "duplicated_rows", "missing_rows", "finished_images_redone",
        "broken_files_after_resume", "temporary_files_after_resume", "errors_after_resume")}
    summary = {
        "trials": len(trials),
        "images": args.images,
        "files_per_image": "5 PNGs (disc, cup, 2 attention maps, overlay) and a record",
        "parallel_trials": args.parallel,
        "killed_mid_run": sum(not t["run_ended_before_kill"] for t in trials),
        "resume_exit_0": sum(t["resume_exit_status"] == 0 for t in trials),
        "records_before_kill_median": statistics.median(t["records_before_kill"] for t in trials),
        "images_segmented_by_resume_total": sum(t["images_segmented_by_resume"] for t in trials),
        "temporary_files_after_kill_total": sum(t["temporary_files_after_kill"] for t in trials),
        **totals,
    }
    print(json.dumps(summary, indent=1))
    args.json.write_text(json.dumps({"command": "python benchmarks/batch_kill_resume.py " + " ".join(sys.argv[1:]),
                                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                     "summary": summary, "trials": trials}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
