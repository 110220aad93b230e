"""Cohort scale: ``segment`` in-process against ``--dask local:1`` and ``--dask local:2``, and the
client's memory for 100,000 inputs.

    python benchmarks/cohort_scale.py [--photos 40] [--rounds 2] [--inputs 10000 100000] [--code CHECKOUT]

Each mode segments the same photos (Drishti-GS1 test images, linked into a folder) with the
shipped weights into a fresh --out, as a separate command; the wall time includes starting
Python, loading the network and (Dask) starting the cluster.  The modes run in alternating
order (in-process, local:1, local:2, then local:2, local:1, in-process, ...), so that a load
that changes during the run hits every mode alike.  Memory is the peak resident size
of the client process and of each worker process, sampled every 0.1 s with psutil.  The
listing measurement creates empty files, lists and plans them as ``segment`` does (nothing
is segmented) and reports the client's peak resident-memory growth; ``--code`` measures the
listing of another checkout (an older commit) to compare.  Prints a markdown report.
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
    start, wall_start = time.perf_counter(), time.time()
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
    # When each image's record was written: start-up (to the first image) against the steady pace
    finished = sorted(json.loads(path.read_bytes())["finished"]
                      for path in (out / ".napari-attunet" / "records").glob("*/*.json"))
    return {"seconds": seconds, "client_peak_mib": peaks.get(process.pid, 0) / 2**20,
            "largest_other_process_peak_mib": max(others, default=0) / 2**20,
            "to_first_image_s": finished[0] - wall_start,
            "per_image_after_first_s": (finished[-1] - finished[0]) / max(1, len(finished) - 1)}


def listing_growth(count: int, code: Path = REPO) -> dict:
    """Client RSS growth (peak, sampled every 10 ms) while ``count`` empty input files are listed and
    planned as ``segment`` does, in a fresh process importing napari_attunet from ``code``."""
    script = f"""
import json, os, shutil, tempfile, threading, time
from pathlib import Path
import psutil
from napari_attunet import segment_command as command
from napari_attunet.run_records import OutputFolder
folder = Path(tempfile.mkdtemp())
for i in range({count}):
    (folder / f"photo{{i:06d}}.png").touch()
process = psutil.Process()
peak = [process.memory_info().rss]
done = threading.Event()
def sample():
    while not done.wait(0.01):
        peak[0] = max(peak[0], process.memory_info().rss)
before = peak[0]
sampler = threading.Thread(target=sample)
sampler.start()
start = time.perf_counter()
out = OutputFolder(folder / "out")
if hasattr(command, "iter_inputs"):  # streaming: listed into a spool on disk, then planned from it
    from napari_attunet.job_spool import JobSpool
    jobs = JobSpool()
    for job in command.iter_inputs([str(folder)], skip=folder / "out"):
        jobs.append(job.source, job.relative)
    plan = command.plan_jobs(command.planned_jobs(jobs), out, 4, command.BatchOptions(), "digest")
    inputs = plan.inputs
else:  # earlier versions: lists in memory
    jobs, problems = command.collect_inputs([str(folder)], skip=folder / "out")
    plan = command.plan_jobs(jobs, {{}}, out, 4, command.BatchOptions(), "digest")
    inputs = len(jobs)
seconds = time.perf_counter() - start
done.set(); sampler.join()
peak[0] = max(peak[0], process.memory_info().rss)
print(json.dumps({{"inputs": inputs, "listing_seconds": seconds, "growth_mib": (peak[0] - before) / 2**20,
                  "bytes_per_input": (peak[0] - before) / inputs}}))
shutil.rmtree(folder)
"""
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir())
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {**json.loads(done.stdout.strip().splitlines()[-1]),
            "code": f"{code.name} at {commit}" if commit else str(code)}


MODES = (("in-process", []), ("dask local:1", ["--dask", "local:1"]), ("dask local:2", ["--dask", "local:2"]))


def interleaved(rounds: int) -> list[tuple[str, list[str]]]:
    """The modes in alternating order (A B C, C B A, ...): a load that changes during the run hits all alike."""
    order = []
    for number in range(rounds):
        order.extend(MODES if number % 2 == 0 else MODES[::-1])
    return order


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=40, help="photos to segment in each mode (0: skip)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, in alternating order")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--inputs", type=int, nargs="*", default=[10_000, 100_000],
                        help="numbers of empty files to list (none: skip)")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="checkout whose listing is measured (an older commit, to compare)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    results: dict = {"photos": args.photos, "rounds": args.rounds, "cores": len(os.sched_getaffinity(0)),
                     "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load_average_at_start": os.getloadavg(), "runs": []}
    if args.photos:
        images = sorted((args.data / "Drishti-GS1_files" / "Test" / "Images").glob("*.png"))
        if not images:
            images = sorted(args.data.rglob("Images/*.png"))
        images = images[: args.photos]
        if len(images) < args.photos:
            raise SystemExit(f"{args.data}: found {len(images)} test photos, need {args.photos}")
        with tempfile.TemporaryDirectory() as temporary:
            photos = Path(temporary) / "photos"
            photos.mkdir()
            for image in images:
                (photos / image.name).symlink_to(image.resolve())
            for number, (name, extra) in enumerate(interleaved(args.rounds)):
                out = Path(temporary) / f"out{number}"
                run = {"mode": name, "load_average_before": os.getloadavg()[0], **run_segment(photos, out, extra)}
                results["runs"].append(run)
                print(json.dumps(run), file=sys.stderr)
    results["listing"] = [listing_growth(count, args.code) for count in args.inputs]
    results["load_average_at_end"] = os.getloadavg()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(results: dict) -> None:
    n = results["photos"]
    print(f"Started {results['started']} on {results['cores']} cores; load average at start "
          f"{results['load_average_at_start']}, at end {results['load_average_at_end']}")
    if results["runs"]:
        print(f"\n| mode ({n} photos, {results['rounds']} runs each) | wall s (each run) | images/s (mean) | "
              "s to the first image | s per image after it | client peak MiB | largest worker peak MiB |"
              "\n|---|---|---|---|---|---|---|")
        seconds = {}
        for name, _ in MODES:
            runs = [run for run in results["runs"] if run["mode"] == name]
            seconds[name] = mean([run["seconds"] for run in runs])
            walls = ", ".join(f"{run['seconds']:.1f}" for run in runs)
            worker = max(run["largest_other_process_peak_mib"] for run in runs)
            first = mean([run["to_first_image_s"] for run in runs])
            pace = mean([run["per_image_after_first_s"] for run in runs])
            print(f"| {name} | {walls} | {n / seconds[name]:.3f} | {first:.1f} | {pace:.3f} | "
                  f"{max(run['client_peak_mib'] for run in runs):.0f} | {f'{worker:.0f}' if worker else '-'} |")
        for name in ("dask local:1", "dask local:2"):
            overhead = (seconds[name] - seconds["in-process"]) / n
            pace = mean([run["per_image_after_first_s"] for run in results["runs"] if run["mode"] == name]) - \
                mean([run["per_image_after_first_s"] for run in results["runs"] if run["mode"] == "in-process"])
            print(f"\nDask overhead per image ({name} minus in-process, mean wall time over {n} photos): "
                  f"{overhead:+.3f} s; after the first image: {pace:+.3f} s (positive: Dask is slower)")
    for listing in results["listing"]:
        print(f"\nListing and planning {listing['inputs']} inputs ({listing['code']}): "
              f"{listing['listing_seconds']:.1f} s, client RSS +{listing['growth_mib']:.1f} MiB at its peak "
              f"({listing['bytes_per_input']:.0f} bytes per input)")


if __name__ == "__main__":
    main()
