"""What a very large photograph costs: reading and segmenting a 100-megapixel fundus photo.

    python benchmarks/large_photo.py [--megapixels 100] [--threads 2]

The sample photograph (``skimage.data.retina()``, 1411 x 1411) is enlarged to the size
asked for (4:3) and written as an 8-bit RGB JPEG and an uncompressed TIFF (only read: the array segmented is
the same).  Each stage
runs in a fresh process; its peak resident memory is measured from the moment the
network is loaded (Linux: ``/proc/self/clear_refs`` resets ``VmHWM``):

* ``baseline``: Python, torch and the shipped network loaded, nothing read;
* ``read``: :func:`read_image` of the file;
* ``segment``: read, then :func:`segment` without attention maps;
* ``segment + attention``: read, then :func:`segment` with the attention maps (four
  float32 maps of the photo's size are returned).

Times are given as CPU seconds (user + system, all threads), which a busy machine
changes less than the wall-clock seconds given beside them.

Prints a markdown table (copied into docs/reliability.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STAGE = r"""
import json, resource, sys, time
import torch
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # the peak resident memory (VmHWM) starts again from the current one
torch.set_num_threads(int(sys.argv[3]))
from napari_attunet import load_model, segment
from napari_attunet.image_files import read_image
stage, path = sys.argv[1], sys.argv[2]
model = load_model(device="cpu")
seconds = {}
reset_peak()
before = status("VmRSS")
start, start_cpu = time.perf_counter(), cpu()
if stage != "baseline":
    image = read_image(path)
    seconds["read"], seconds["read_cpu"] = time.perf_counter() - start, cpu() - start_cpu
if stage.startswith("segment"):
    start, start_cpu = time.perf_counter(), cpu()
    result = segment(image, model, "cpu", attention=stage.endswith("attention"))
    seconds["segment"], seconds["segment_cpu"] = time.perf_counter() - start, cpu() - start_cpu
    seconds["disc_found"] = bool(result.disc_found)
print(json.dumps({"before_mb": before, "peak_mb": status("VmHWM"), **seconds}))
"""


def make_photo(megapixels: float, folder: Path) -> dict[str, Path]:
    import numpy as np
    import tifffile
    from PIL import Image
    from skimage import data

    width = int(round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    height = int(round(width * 3 / 4))
    retina = Image.fromarray(data.retina())
    canvas = Image.new("RGB", (width, height))
    side = height
    canvas.paste(retina.resize((side, side), Image.Resampling.BILINEAR), ((width - side) // 2, 0))
    paths = {"JPEG": folder / "large.jpg", "TIFF": folder / "large.tif"}
    canvas.save(paths["JPEG"], quality=92)
    tifffile.imwrite(paths["TIFF"], np.asarray(canvas))
    return paths


def run_stage(stage: str, path: Path, threads: int) -> dict:
    output = subprocess.run([sys.executable, "-c", STAGE, stage, str(path), str(threads)], capture_output=True,
                            text=True, check=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS":
                                                                   str(threads), "PATH": "/usr/bin:/bin"})
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_photo(args.megapixels, Path(folder))
        from PIL import Image

        with Image.open(paths["JPEG"]) as image:
            width, height = image.size
        print(f"{width} x {height} pixels ({width * height / 1e6:.1f} MP), torch threads {args.threads}, "
              f"{platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
        load = os.getloadavg()[0]
        print(f"load average when starting: {load:.1f} on {os.cpu_count()} cores\n")
        print("| file | stage | peak memory, MB (above the loaded network) | read: CPU s (wall s) | "
              "segment: CPU s (wall s) |")
        print("| --- | --- | ---: | ---: | ---: |")
        for kind, path in paths.items():
            size = path.stat().st_size / 1e6
            for stage in ("baseline", "read", "segment", "segment + attention"):
                if kind != "JPEG" and stage != "read":  # after reading, the same array is segmented
                    continue
                result = run_stage(stage.replace(" + ", "_"), path, args.threads)
                label = "-" if stage == "baseline" else f"{kind}, {size:.0f} MB"
                read = f"{result['read_cpu']:.1f} ({result['read']:.1f})" if "read" in result else ""
                seconds = f"{result['segment_cpu']:.1f} ({result['segment']:.1f})" if "segment" in result else ""
                print(f"| {label} | {stage} | {result['peak_mb']:.0f} ({result['peak_mb'] - result['before_mb']:+.0f}) "
                      f"| {read} | {seconds} |", flush=True)


if __name__ == "__main__":
    main()
