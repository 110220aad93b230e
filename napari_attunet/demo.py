"""The README's main command: segment the bundled sample photo with the default weights.

``python -m napari_attunet.demo [--out DIR] [--view]`` (``tox -e demo [-- --view]``) segments
``skimage.data.retina()`` (a CC0 fundus photograph shipped inside scikit-image, so
nothing is downloaded), writes masks, attention maps, an overlay PNG and a CSV into
``DIR`` and prints the measurements.  ``--view`` then opens napari with the photo,
the result layers and the segment widget, showing the disc as after a segmentation
in the widget.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

WINDOW_SIZE = (1600, 1000)
"""Width and height of the ``--view`` window (less where the screen is smaller)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="napari-attunet-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default: demo-output)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--view", action="store_true", help="open the result in napari")
    args = parser.parse_args(argv)

    import skimage.data

    from .atomic import atomic_write_bytes
    from .inference import segment
    from .segment_command import csv_bytes, csv_row, output_paths, write_result
    from .weights import load_model

    image = skimage.data.retina()
    model = load_model(device=args.device)
    result = segment(image, model, device=args.device)
    paths = output_paths(args.out, "retina", model.num_gates, attention=True, overlay=True)
    write_result(result, image, paths)
    atomic_write_bytes(args.out / "results.csv", csv_bytes([csv_row("retina.png", result)]))

    m = result.measurements
    print(f"sample: skimage.data.retina() ({image.shape[1]} x {image.shape[0]} px), "
          f"weights {result.provenance['weights']} on {result.provenance['device']}, {result.seconds:.2f} s")
    if not m.disc_found:
        print("no optic disc found")
    else:
        print(f"optic disc: centre (x {m.disc_centre_x:.0f}, y {m.disc_centre_y:.0f}), "
              f"{m.disc_vertical_diameter} px tall, {m.disc_area} px")
        print(f"optic cup: {m.cup_vertical_diameter} px tall, {m.cup_area} px")
        print(f"vCDR {m.vcdr:.3f}   area CDR {m.area_cdr:.3f}")
    print(f"wrote {len(paths) + 1} files to {args.out}/ (masks, {len(result.attention)} attention maps, "
          "overlay, results.csv)")
    if args.view:
        import napari

        view(image, result)
        napari.run()
    return 0


def view(image, result, name: str = "retina"):
    """A napari window with ``image``, its ``result`` put in by the segment widget, sized for canvas and dock.

    Returns ``(viewer, widget)``; the result layers arrive over the next turns of the event loop.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-attunet demo")
    screen = QApplication.primaryScreen()
    width, height = WINDOW_SIZE
    if screen is not None:
        available = screen.availableGeometry()
        width, height = min(width, available.width()), min(height, available.height())
    viewer.window.resize(width, height)
    photo = viewer.add_image(image, name=name, rgb=image.ndim == 3)
    _, widget = viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
    widget.image.value = photo
    widget.show_result(photo, result)
    return viewer, widget


if __name__ == "__main__":
    sys.exit(main())
