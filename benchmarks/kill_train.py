"""Kill ``napari-attunet train`` with SIGKILL at random moments, resume, and count what was left.

    python benchmarks/kill_train.py [--trials 20] [--seed 0]

A folder of synthetic annotated photographs is trained on with the shipped network's
architecture, without validation (so the 8 MB weights and the 24 MB resume state are
both written after every epoch, and small inputs make the writes a good part of the
time).  Each trial starts ``train`` (``--resume`` once a resume state exists), waits
until its first training step, kills it with ``kill -9`` after a further random delay,
then checks the files: does ``--out`` load, does the resume state load, which ``.tmp``
files were left.  A last run resumes to the end.  Prints a markdown table
(copied into docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 8


def make_data(folder: Path, count: int = 4) -> None:
    sys.path.insert(0, str(REPO / "src_tests"))
    from conftest import synthetic_fundus

    from napari_attunet.image_files import mask_to_uint8, write_image

    folder.mkdir()
    for index in range(count):
        image, disc, cup = synthetic_fundus(seed=index)
        write_image(folder / f"eye{index}.png", image)
        write_image(folder / f"eye{index}_disc.png", mask_to_uint8(disc))
        write_image(folder / f"eye{index}_cup.png", mask_to_uint8(cup))


def command(data: Path, out: Path, resume: bool) -> list[str]:
    """The train command: ``--resume`` when asked, else a new run (replacing what a killed one left)."""
    return [sys.executable, "-m", "napari_attunet", "train", "--data", str(data), "--out", str(out),
            "--epochs", str(EPOCHS), "--input-size", "64", "--batch-size", "2", "--val-fraction", "0",
            "--threads", "1", "--device", "cpu", "--resume" if resume else "--overwrite"]


def loads(check) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check()
    except FileNotFoundError:
        return "absent"
    except Exception as error:  # any failure to load is what is counted here
        return f"broken ({type(error).__name__})"
    return "ok"


def inspect(out: Path) -> dict:
    from safetensors.torch import load_file

    from napari_attunet.training import resume_path
    from napari_attunet.weights import load_model

    def weights():
        if not out.exists():
            raise FileNotFoundError
        load_model(out, device="cpu")

    def state():
        if not resume_path(out).exists():
            raise FileNotFoundError
        load_file(str(resume_path(out)))

    temporaries = sorted(out.parent.glob(".*.tmp"))
    return {"weights": loads(weights), "state": loads(state), "tmp": [p.name for p in temporaries],
            "tmp_mb": sum(p.stat().st_size for p in temporaries) / 1e6}


def epochs_done(out: Path) -> int:
    import json

    from safetensors import safe_open

    from napari_attunet.training import resume_path

    if not resume_path(out).exists():
        return 0
    with safe_open(str(resume_path(out)), framework="pt") as handle:
        return json.loads(handle.metadata()["napari_attunet_resume"])["epoch"]


def print_row(row: dict) -> None:
    print(f"| {row['trial']} | {'--resume' if row['resume'] else 'a new run'} | {row['delay']:.1f}"
          f"{' (ended first)' if row['finished'] else ''} | {row['epochs'][0]} -> {row['epochs'][1]} | "
          f"{row['weights']} | {row['state']} | {len(row['tmp'])} ({row['tmp_mb']:.0f}) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=20.0,
                        help="longest wait after the first training step before the kill (s)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rows = []
    print("| trial | started with | killed after the first step (s) | epochs done before -> after | `--out` | "
          "resume state | `.tmp` files left (MB) |")
    print("| ---: | --- | ---: | --- | --- | --- | --- |", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        data, out = Path(folder) / "data", Path(folder) / "run" / "net.safetensors"
        make_data(data)
        out.parent.mkdir()
        for trial in range(1, args.trials + 1):
            before = epochs_done(out)
            resume = before > 0
            log = open(Path(folder) / f"trial{trial}.log", "w")  # noqa: SIM115 (closed below)
            process = subprocess.Popen(command(data, out, resume), env=env, stdout=log, stderr=log)
            log_path = Path(folder) / f"trial{trial}.log"
            while process.poll() is None and not re.search(r"\d+/\d+ \[", log_path.read_text(errors="ignore")):
                time.sleep(0.2)  # starting: imports, data, network
            delay = float(rng.uniform(0.0, args.max_delay))
            time.sleep(delay)
            finished = process.poll() is not None
            if not finished:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            log.close()
            if finished and process.returncode:
                sys.exit(f"trial {trial}: train failed:\n{(Path(folder) / f'trial{trial}.log').read_text()[-2000:]}")
            found = inspect(out)
            rows.append({"trial": trial, "resume": resume, "delay": delay, "epochs": (before, epochs_done(out)),
                         "finished": finished, **found})
            print_row(rows[-1])
            if finished:
                break
        final = subprocess.run(command(data, out, epochs_done(out) > 0), env=env, capture_output=True, text=True)
        after = inspect(out)

    left = sum(1 for row in rows if row["tmp"])
    broken = sum(1 for row in rows for key in ("weights", "state") if row[key].startswith("broken"))
    kills = sum(1 for row in rows if not row["finished"])
    print(f"\n{kills} kills in {len(rows)} runs: {broken} broken files, {left} kills left `.tmp` files "
          "(each removed by the next run). "
          f"Last run (--resume to epoch {EPOCHS}): exit code {final.returncode}, `--out` {after['weights']}, "
          f"{len(after['tmp'])} `.tmp` files left afterwards.")


if __name__ == "__main__":
    main()
