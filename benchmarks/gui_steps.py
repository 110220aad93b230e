"""Where the segment widget's GUI-thread time goes: each step of putting the result in, each draw, each gc pause.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_steps.py [--runs 2]

Same window and photo as ``gui_responsiveness.py --case sample`` (attention maps on);
segments ``--runs`` times (the first adds the layers, later runs replace them) and
prints, from the arrival of the result in the GUI thread: every widget step (one per
turn of the event loop), every canvas draw and every garbage collection of 5 ms or
more, with its start (ms after the result) and duration; then the five longest gaps of
a 10 ms heartbeat timer (the stalls).
"""

from __future__ import annotations

import argparse
import gc
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    import napari
    import numpy as np
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication
    from skimage import data

    from napari_attunet._widgets import _base

    log: list[tuple[str, float, float, str]] = []
    collecting: dict[str, float] = {}

    def on_gc(phase, info):
        if phase == "start":
            collecting["start"] = time.perf_counter()
            return
        start = collecting.get("start", time.perf_counter())
        if time.perf_counter() - start > 0.005:
            thread = threading.current_thread().name
            log.append((f"gc gen {info['generation']} ({thread})", start, time.perf_counter() - start, ""))

    gc.callbacks.append(on_gc)

    next_step = _base.JobWidget._next_step

    def timed_step(widget):
        step = widget._steps[0] if widget._steps else None
        names = "/".join(getattr(getattr(step, "__code__", None), "co_names", ())[:2])
        start = time.perf_counter()
        next_step(widget)
        log.append(("step", start, time.perf_counter() - start, names))

    _base.JobWidget._next_step = timed_step

    viewer = napari.Viewer()
    viewer.window.resize(1600, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
    widget.show_attention.value = True
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    draw = type(canvas).on_draw

    def timed_draw(self, event):
        start = time.perf_counter()
        draw(self, event)
        log.append(("draw", start, time.perf_counter() - start, ""))

    type(canvas).on_draw = timed_draw
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.001)

    photo = viewer.add_image(data.retina(), name="photo", rgb=True)
    widget.image.value = photo
    pump(1.5)
    show_result = type(widget).show_result
    for run in range(args.runs):
        log.clear()
        ticks.clear()
        arrived: dict[str, float] = {}

        def hook(*a, arrived=arrived, **k):
            arrived["result"] = time.perf_counter()
            return show_result(widget, *a, **k)

        widget.show_result = hook
        widget.run_button.native.click()
        while widget.busy:
            QApplication.processEvents()
            time.sleep(0.001)
        pump(1.0)
        vars(widget).pop("show_result", None)
        start = arrived["result"]
        stamps = [start] + [t for t in ticks if t > start]
        gaps = np.diff(stamps)
        print(f"run {run + 1} ({'add' if run == 0 else 'replace'}): longest stall after the result "
              f"{gaps.max() * 1000:.0f} ms")
        for kind, began, seconds, what in sorted(log, key=lambda entry: entry[1]):
            if began >= start - 0.01:
                print(f"  {kind:24s} +{(began - start) * 1000:6.0f} ms  {seconds * 1000:5.0f} ms  {what}")
        for index in np.argsort(gaps)[-5:][::-1]:
            print(f"  stall {gaps[index] * 1000:.0f} ms from +{(stamps[index] - start) * 1000:.0f} ms")
    viewer.close()


if __name__ == "__main__":
    main()
