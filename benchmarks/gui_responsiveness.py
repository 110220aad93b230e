"""GUI responsiveness of the segment widget: heartbeat gaps and napari's cost of adding the result layers.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py [--repeats 2]

Opens a real napari window, docks "Segment optic disc & cup" and segments

* the sample photo (``skimage.data.retina()``, 1411 x 1411), and
* the same photo resized to 2048 x 1760 (width x height), a typical fundus camera size,

``--repeats`` times each, each image in a fresh process (removing big layers and adding a
2048-wide RGB image in one window crashed Mesa's software OpenGL under Xvfb, in napari
itself, so the measurements do not share a window).  While the network computes, a 10 ms ``QTimer`` records its
ticks: the longest gap between two ticks is how long the GUI was frozen (target
100 ms).  Then the result layers are added (first run) or their data replaced (later
runs) in the main thread; that time, and the time until the canvas has drawn them,
is napari's cost.  Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per image (the first adds layers, later ones replace)")
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

    retina = data.retina()
    large = (transform.resize(retina, (1760, 2048), order=1, preserve_range=True, anti_aliasing=False)
             .astype(np.uint8))
    cases = {"sample": [("sample (skimage retina)", retina)], "large": [("resized photo", large)]}[args.case]

    viewer = napari.Viewer(title="napari-attunet GUI benchmark")
    viewer.window._qt_window.resize(1600, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
    widget.device.value = args.device
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    draws: list[float] = []
    canvas.events.draw.connect(lambda event: draws.append(time.perf_counter()))
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()

    def wait(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.002)

    rows = []
    for label, image in cases:
        name = "retina" if image is retina else "large"
        layer = viewer.add_image(image, name=name, rgb=True)
        widget.image.value = layer
        wait(1.0)
        for run in range(args.repeats):
            window: dict[str, float] = {}
            original = type(widget).put_layers

            def timed_put(self, layer_data, source, original=original, window=window):
                window["end"] = time.perf_counter()
                out = original(self, layer_data, source)
                window["added"] = time.perf_counter()
                return out

            widget.put_layers = timed_put.__get__(widget)
            ticks.clear()
            window["start"] = time.perf_counter()
            job = widget.segment()
            if job is None:
                print(f"refused: {widget.last_message}", file=sys.stderr)
                return 1
            while job.running:
                QApplication.processEvents()
                time.sleep(0.001)
            if job.outcome != "done":
                print(f"{label}: {job.outcome}: {widget.last_message}", file=sys.stderr)
                return 1
            draws.clear()
            canvas.update()
            deadline = time.perf_counter() + 10
            while not draws and time.perf_counter() < deadline:
                QApplication.processEvents()
                time.sleep(0.001)
            drawn = draws[0] if draws else float("nan")
            vars(widget).pop("put_layers", None)
            inside = [t for t in ticks if window["start"] <= t <= window["end"]]
            stamps = [window["start"], *inside, window["end"]]
            gaps = np.diff(stamps)
            rows.append({
                "image": label, "size": f"{image.shape[1]} x {image.shape[0]}",
                "run": "add" if run == 0 else "replace",
                "computing_s": window["end"] - window["start"],
                "ticks": len(inside),
                "longest_gap_ms": 1000 * float(gaps.max()),
                "median_gap_ms": 1000 * float(statistics.median(gaps)),
                "layers_ms": 1000 * (window["added"] - window["end"]),
                "draw_ms": 1000 * (drawn - window["added"]),
            })
            wait(0.5)
    timer.stop()

    header = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
              f"on {torch.get_num_threads()} threads, napari {napari.__version__}, "
              f"Qt platform {QApplication.platformName()}")
    print(json.dumps({"header": header, "rows": rows}))
    viewer.close()
    return 0


def _run_all(args) -> int:
    """Each image in a fresh process: one napari window per measurement, nothing left over from the last."""
    rows, header = [], ""
    for case in ("sample", "large"):
        completed = subprocess.run([sys.executable, __file__, "--case", case, "--repeats", str(args.repeats),
                                    "--device", args.device], capture_output=True, text=True)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if completed.returncode != 0 or not lines:
            print(completed.stdout[-2000:], completed.stderr[-4000:], file=sys.stderr)
            return 1
        result = json.loads(lines[-1])
        rows += result["rows"]
        header = result["header"]
    print(f"GUI responsiveness of the segment widget ({header}); default weights, device {args.device}, "
          "attention maps on (one layer per gate), probability maps off. `computing`: from pressing Segment "
          "to the result reaching the main thread; heartbeat: a 10 ms QTimer during that time; "
          "`add/replace layers`: napari adding the result layers (first run) or replacing their data (rerun); "
          "`first draw`: until the canvas has drawn them.\n")
    print("| image | size (w x h) | run | computing (s) | heartbeat ticks | longest gap (ms) | median gap (ms) "
          "| add/replace layers (ms) | first draw after (ms) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['image']} | {r['size']} | {r['run']} | {r['computing_s']:.2f} | {r['ticks']} | "
              f"{r['longest_gap_ms']:.0f} | {r['median_gap_ms']:.1f} | {r['layers_ms']:.0f} | {r['draw_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
