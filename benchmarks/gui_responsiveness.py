"""GUI responsiveness of the segment widget: the longest event-loop stall from Segment to the drawn result.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py [--repeats 2]

Opens a real napari window (1600 x 1000), docks "Segment optic disc & cup" and segments

* the sample photo (``skimage.data.retina()``, 1411 x 1411), and
* the same photo resized to 2048 x 1760 (width x height), a typical fundus camera size,

with attention maps on, ``--repeats`` times each (the first run adds the result layers,
later runs replace them), each image in a fresh process (removing big layers and adding
a 2048-wide RGB image in one window crashed Mesa's software OpenGL under Xvfb, in napari
itself).  A 10 ms ``QTimer`` ticks all along: a gap between two ticks is a stall of the
event loop, a time the window is frozen.  Measured from the click on Segment until the
first tick after the canvas has drawn the result (layers, camera on the disc):

* ``computing``: until the result reaches the GUI thread (the network runs in a worker);
* ``showing``: the widget putting the layers into the viewer and napari drawing them;
* the longest stall of each phase and of the whole (target: at most 250 ms).

For scale, the same run then times napari's own cost of adding one photo-sized image
layer (float32, the size of the photo, shown): the longest stall from the call to the
first tick after its first draw.  Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs per image (the first adds layers, later ones replace)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--case", choices=["sample", "large"], default=None,
                        help="measure one image in this process (default: each in a fresh process)")
    args = parser.parse_args(argv)
    if args.case is None:
        return _run_all(args)

    import napari
    import numpy as np
    import torch
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication
    from skimage import data, transform

    image = data.retina()
    if args.case == "large":
        image = (transform.resize(image, (1760, 2048), order=1, preserve_range=True, anti_aliasing=False)
                 .astype(np.uint8))
    label = {"sample": "sample (skimage retina)", "large": "resized photo"}[args.case]

    viewer = napari.Viewer(title="napari-attunet GUI benchmark")
    viewer.window.resize(1600, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
    widget.device.value = args.device
    widget.show_attention.value = True
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    draws: list[float] = []
    canvas.events.draw.connect(lambda event: draws.append(time.perf_counter()))
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()

    def pump_until(condition, timeout: float) -> None:
        end = time.perf_counter() + timeout
        while not condition() and time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.001)

    def wait(seconds: float) -> None:
        end = time.perf_counter() + seconds
        pump_until(lambda: time.perf_counter() >= end, seconds + 1)

    def drawn_after(moment: float) -> float:
        """The first heartbeat tick after the first draw that starts after ``moment`` (the draw has ended)."""
        pump_until(lambda: any(d > moment for d in draws), 2.0)
        after = [d for d in draws if d > moment]
        start = after[0] if after else moment
        pump_until(lambda: any(t > start for t in ticks), 2.0)
        return next(t for t in ticks if t > start)

    def longest(start: float, end: float) -> float:
        stamps = [start, *[t for t in ticks if start < t < end], end]
        return 1000 * float(np.diff(stamps).max())

    busy = (lambda: widget.busy) if hasattr(widget, "busy") else (lambda: widget.job.running)
    hook = "show_result" if hasattr(widget, "show_result") else "_on_done"  # (the widget before show_result)
    photo = viewer.add_image(image, name="photo", rgb=True)
    widget.image.value = photo
    wait(1.5)
    rows = []
    for run in range(args.repeats):
        moments: dict[str, float] = {}
        original = getattr(type(widget), hook)

        def arrived(*a, original=original, moments=moments, **k):
            moments["result"] = time.perf_counter()
            return original(widget, *a, **k)

        setattr(widget, hook, arrived)
        ticks.clear()
        draws.clear()
        moments["click"] = time.perf_counter()
        widget.run_button.native.click()
        job = widget.job
        if job is None or not job.running:
            print(f"refused: {widget.last_message}", file=sys.stderr)
            return 1
        pump_until(lambda: not busy(), 600)
        moments["idle"] = time.perf_counter()
        vars(widget).pop(hook, None)
        if job.outcome != "done" or "result" not in moments:
            print(f"{label}: {job.outcome}: {widget.last_message}", file=sys.stderr)
            return 1
        moments["end"] = drawn_after(moments["idle"])
        rows.append({
            "image": label, "size": f"{image.shape[1]} x {image.shape[0]}", "run": "add" if run == 0 else "replace",
            "computing_s": moments["result"] - moments["click"],
            "showing_s": moments["end"] - moments["result"],
            "stall_computing_ms": longest(moments["click"], moments["result"]),
            "stall_showing_ms": longest(moments["result"], moments["end"]),
            "stall_ms": longest(moments["click"], moments["end"]),
            "layers": len(viewer.layers) - 1,
        })
        wait(1.0)

    # napari's own cost of adding one photo-sized image layer, in the same window
    reference = np.random.default_rng(0).random(image.shape[:2], dtype=np.float32)
    ticks.clear()
    draws.clear()
    start = time.perf_counter()
    viewer.add_image(reference, name="reference", colormap="inferno", blending="additive", contrast_limits=(0, 1))
    added = drawn_after(start)
    reference_ms = longest(start, added)
    for row in rows:
        row["reference_ms"] = reference_ms
    timer.stop()

    header = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
              f"on {torch.get_num_threads()} threads, napari {napari.__version__}, "
              f"Qt platform {QApplication.platformName()}, load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({"header": header, "rows": rows}))
    viewer.close()
    return 0


def _run_all(args) -> int:
    """Each image in a fresh process: one napari window per measurement, nothing left over from the last."""
    rows, headers = [], []
    for case in ("sample", "large"):
        completed = subprocess.run([sys.executable, __file__, "--case", case, "--repeats", str(args.repeats),
                                    "--device", args.device], capture_output=True, text=True)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if completed.returncode != 0 or not lines:
            print(completed.stdout[-2000:], completed.stderr[-4000:], file=sys.stderr)
            return 1
        result = json.loads(lines[-1])
        rows += result["rows"]
        headers.append(result["header"])
    print(f"GUI responsiveness of the segment widget ({'; '.join(headers)}); default weights, device "
          f"{args.device}, attention maps on, probability maps off. Stalls are gaps of a 10 ms QTimer; "
          "`computing`: from the click on Segment until the result reaches the GUI thread; `showing`: until "
          "the canvas has drawn the result layers; `napari: one image layer`: napari adding one photo-sized "
          "float32 image layer, in the same window.\n")
    print("| image | size (w x h) | run | computing (s) | longest stall computing (ms) | showing (s) "
          "| longest stall showing (ms) | longest stall, click to drawn (ms) | napari: one image layer (ms) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['image']} | {r['size']} | {r['run']} | {r['computing_s']:.2f} | {r['stall_computing_ms']:.0f} "
              f"| {r['showing_s']:.2f} | {r['stall_showing_ms']:.0f} | **{r['stall_ms']:.0f}** "
              f"| {r['reference_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
