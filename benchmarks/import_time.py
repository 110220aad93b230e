"""Start-up cost of the package and its napari contributions, each in a fresh Python process.

For every case a new interpreter imports the package (and, for the npe2 contributions, does
the work napari asks of them on a tiny file) and reports the seconds spent and whether torch
was loaded.  ``--before DIR`` times another checkout (e.g. an older commit exported with
``git archive``) in the same run, alternating the two, so machine noise hits both alike.

    python benchmarks/import_time.py [--before /tmp/before] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Each case runs inside a fresh interpreter with the checkout first on sys.path.
CASES = {
    "import napari_attunet": "import napari_attunet",
    "reader: open a mask file": (
        "from napari_attunet._reader import get_reader\n"
        "get_reader(MASK)(MASK)"
    ),
    "writer: save a mask": (
        "import numpy as np\n"
        "from napari_attunet._writers import write_mask\n"
        "write_mask(OUT, np.ones((8, 8), np.uint8), {})"
    ),
    "sample data: the retina photo": (
        "from napari_attunet._sample_data import retina_sample\n"
        "retina_sample()"
    ),
    "import napari_attunet; load the default network": (
        "import napari_attunet\n"
        "napari_attunet.load_model(device='cpu')"
    ),
}

RUNNER = """
import sys, time
sys.path.insert(0, {checkout!r})
MASK, OUT = {mask!r}, {out!r}
start = time.perf_counter()
exec(compile({code!r}, "case", "exec"))
seconds = time.perf_counter() - start
import napari_attunet
assert napari_attunet.__file__.startswith({checkout!r}), napari_attunet.__file__
print(seconds, "torch" in sys.modules)
"""


def run_case(checkout: Path, code: str, scratch: Path) -> tuple[float, bool]:
    mask, out = scratch / "eye_disc.png", scratch / "written_disc.png"
    script = RUNNER.format(checkout=str(checkout), mask=str(mask), out=str(out), code=code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    seconds, torch_loaded = done.stdout.split()
    return float(seconds), torch_loaded == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=None, help="another checkout to time side by side")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/napari-attunet-import-time"))
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("L", (8, 8), 255).save(args.scratch / "eye_disc.png")
    checkouts = {"after": REPO}
    if args.before:
        checkouts = {"before": args.before.resolve(), **checkouts}
    results: dict = {}
    for case, code in CASES.items():
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        torch_loaded: dict[str, bool] = {}
        run_case(REPO, code, args.scratch)  # warm the file cache once
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():  # alternate the two checkouts
                seconds, loaded = run_case(checkout, code, args.scratch)
                times[name].append(seconds)
                torch_loaded[name] = loaded
        results[case] = {name: {"median_s": statistics.median(times[name]), "torch_loaded": torch_loaded[name]}
                         for name in checkouts}
    print(json.dumps(results, indent=2))
    names = list(checkouts)
    print("\n| case | " + " | ".join(f"{n} (s, torch loaded?)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for case, row in results.items():
        cells = [f"{row[n]['median_s']:.2f}, {'yes' if row[n]['torch_loaded'] else 'no'}" for n in names]
        print(f"| {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
