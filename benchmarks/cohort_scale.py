"""Cohort scale: ``segment`` in-process against ``--dask local:1`` and ``--dask local:2``, and the
client's memory for 100,000 inputs.

    python benchmarks/cohort_scale.py [--photos 40] [--data ../shared/data/drishti-gs1] [--inputs 100000]

Each mode segments the same photos (Drishti-GS1 test images, linked into a folder) with the
shipped weights into a fresh --out, as a separate command; the wall time includes starting
Python, loading the network and (Dask) starting the cluster.  Memory is the peak resident size
of the client process and of each worker process, sampled every 0.1 s with psutil.  The
listing measurement creates empty files, lists and plans them as ``segment`` does (nothing
is segmented) and reports the client's resident-memory growth.  Prints a markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "drishti-gs1"


def run_segment(photos: Path, out: Path, extra: list[str]) -> dict:
    """Run one ``segment`` command; its wall time and the peak RSS of the client and of its workers."""
    # torch picks its threads itself: all cores in-process, cores / workers on each Dask worker
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "napari_attunet", "segment", str(photos), "--out", str(out), "--device", "cpu",
               *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = psutil.Process(process.pid)
    peaks: dict[int, int] = {}
    while process.poll() is None:
        try:
            for member in [client, *client.children(recursive=True)]:
                try:
                    peaks[member.pid] = max(peaks.get(member.pid, 0), member.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read()
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed ({process.returncode}): {stderr[-2000:]}")
    others = [rss for pid, rss in peaks.items() if pid != process.pid]
    return {"seconds": seconds, "client_peak_mib": peaks.get(process.pid, 0) / 2**20,
            "largest_other_process_peak_mib": max(others, default=0) / 2**20}


def listing_growth(count: int) -> dict:
    """Client RSS growth while ``count`` empty input files are listed and planned (in a fresh process)."""
    script = f"""
import json, os, resource, shutil, sys, tempfile, time
from pathlib import Path
import psutil
from napari_attunet.segment_command import BatchOptions, collect_inputs, plan_jobs
from napari_attunet.run_records import OutputFolder
folder = Path(tempfile.mkdtemp())
for i in range({count}):
    (folder / f"photo{{i:06d}}.png").touch()
rss = lambda: psutil.Process().memory_info().rss
before = rss(); start = time.perf_counter()
jobs, problems = collect_inputs([str(folder)], skip=folder / "out")
listed = rss(); listing_seconds = time.perf_counter() - start
out = OutputFolder(folder / "out")
plan = plan_jobs(jobs, {{}}, out, 4, BatchOptions(), "digest")
planned = rss()
print(json.dumps({{"inputs": len(jobs), "listing_seconds": listing_seconds,
                  "growth_listing_mib": (listed - before) / 2**20, "growth_planned_mib": (planned - before) / 2**20,
                  "bytes_per_input": (planned - before) / len(jobs)}}))
shutil.rmtree(folder)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--inputs", type=int, default=100_000, help="empty files to list (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    images = sorted((args.data / "Drishti-GS1_files" / "Test" / "Images").glob("*.png"))
    if not images:
        images = sorted(args.data.rglob("Images/*.png"))
    images = images[: args.photos]
    if len(images) < args.photos:
        raise SystemExit(f"{args.data}: found {len(images)} test photos, need {args.photos}")
    results: dict = {"photos": len(images), "cores": len(os.sched_getaffinity(0)),
                     "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as temporary:
        photos = Path(temporary) / "photos"
        photos.mkdir()
        for image in images:
            (photos / image.name).symlink_to(image.resolve())
        for name, extra in (("in-process", []), ("dask local:1", ["--dask", "local:1"]),
                            ("dask local:2", ["--dask", "local:2"])):
            results[name] = run_segment(photos, Path(temporary) / name.replace(" ", "_").replace(":", ""), extra)
            print(name, json.dumps(results[name]), file=sys.stderr)
    if args.inputs:
        results["listing"] = listing_growth(args.inputs)
    results["load_average_at_end"] = os.getloadavg()
    n = results["photos"]
    print("| mode | wall s | images/s | client peak MiB | largest worker peak MiB |\n|---|---|---|---|---|")
    for name in ("in-process", "dask local:1", "dask local:2"):
        r = results[name]
        print(f"| {name} | {r['seconds']:.1f} | {n / r['seconds']:.3f} | {r['client_peak_mib']:.0f} | "
              f"{r['largest_other_process_peak_mib']:.0f} |")
    overhead = (results["dask local:1"]["seconds"] - results["in-process"]["seconds"]) / n
    print(f"\nDask overhead per image (local:1 minus in-process, over {n} photos): {overhead:.2f} s")
    listing = results.get("listing")
    if listing:
        print(f"Listing and planning {listing['inputs']} inputs: {listing['listing_seconds']:.1f} s, client RSS +"
              f"{listing['growth_planned_mib']:.0f} MiB ({listing['bytes_per_input']:.0f} bytes per input)")
    print(f"Load average at start {results['load_average_at_start']}, at end {results['load_average_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
