"""Real screenshots of the napari plugin for the user guide (docs/images/*.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--weights FILE]

Opens napari, loads the sample photo through the plugin's sample-data entry, runs the
"Segment optic disc & cup" widget and a short fine-tuning run in the "Fine-tune model"
widget, and saves window screenshots (``viewer.screenshot(canvas_only=False)``).
``--weights`` stands in for the shipped default weights (e.g. a checkpoint still in training).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="use this file as the default weights")
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.weights is not None:
        import napari_attunet.weights as weights

        path = args.weights.resolve()
        weights.default_weights_path = lambda: path

    import napari
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from qtpy.QtWidgets import QApplication

    def pump(seconds: float = 0.5) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.01)

    def wait(job) -> None:
        while job.running:
            QApplication.processEvents()
            time.sleep(0.01)
        pump(0.5)

    def shot(name: str, canvas_only: bool = False):
        pump(0.8)
        path = args.out / name
        image = viewer.screenshot(str(path), canvas_only=canvas_only, flash=False)
        print(f"wrote {path} {image.shape[1]} x {image.shape[0]}")
        return image

    viewer = napari.Viewer(title="napari-attunet")
    viewer.window._qt_window.resize(1600, 1000)
    (photo,) = viewer.open_sample("napari-attunet", "retina")
    _, segment = viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
    pump(1.0)

    # 1. The sample, segmented: disc (red) and cup (yellow) label layers and the measurements.
    job = segment.segment()
    wait(job)
    if job.outcome != "done":
        print(f"segmentation failed: {segment.last_message}", file=sys.stderr)
        return 1
    disc = viewer.layers["retina optic disc"]
    record = disc.metadata["measurements"]
    gates = [layer for layer in viewer.layers if layer.name.startswith("retina attention")]
    for layer in gates:
        layer.visible = False
    centre = record["disc_centre_y"], record["disc_centre_x"]
    size = max(record["disc_vertical_diameter"], record["disc_horizontal_diameter"])
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.zoom = camera.zoom * 1.7
    camera.center = (centre[0], centre[1] + 2.2 * size)
    viewer.layers.selection.active = viewer.layers["retina optic cup"]
    shot("segment-sample.png")

    # 2. Attention maps over the photo, zoomed on the optic disc, labels as outlines.
    for layer in (disc, viewer.layers["retina optic cup"]):
        layer.contour = 3
        layer.opacity = 0.9
    gates[0].visible = True
    viewer.layers.selection.active = gates[0]
    camera.center = centre
    canvas = viewer.window._qt_viewer.canvas.size
    camera.zoom = 0.45 * min(canvas) / size
    shot("attention-maps.png")

    # 3. Every gate, one tile each (canvas only), finest first.
    tiles = []
    font = ImageFont.load_default(size=22)
    for layer in viewer.layers:
        if layer in (disc, viewer.layers["retina optic cup"]):
            layer.visible = False
    for index, layer in enumerate(gates):
        for other in gates:
            other.visible = other is layer
        tile = Image.fromarray(shot(f"_gate{index + 1}.png", canvas_only=True)[..., :3])
        (args.out / f"_gate{index + 1}.png").unlink()
        side = min(tile.size)
        left, top = (tile.size[0] - side) // 2, (tile.size[1] - side) // 2
        tile = tile.crop((left, top, left + side, top + side)).resize((420, 420))
        ImageDraw.Draw(tile).text((12, 8), layer.name, fill=(255, 255, 255), font=font,
                                  stroke_width=2, stroke_fill=(0, 0, 0))
        tiles.append(tile)
    columns = 2 if len(tiles) == 4 else len(tiles)
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (420 * columns + 6 * (columns - 1), 420 * rows + 6 * (rows - 1)), (38, 41, 48))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * 426, (index // columns) * 426))
    sheet.save(args.out / "attention-gates.png")
    print(f"wrote {args.out / 'attention-gates.png'}")
    for layer in gates:
        layer.visible = False
    for layer in (disc, viewer.layers["retina optic cup"]):
        layer.visible = True
        layer.contour = 0
        layer.opacity = 0.4

    # 4. Fine-tuning mid-training: the sample and its mirror image with their (corrected) labels.
    cup = viewer.layers["retina optic cup"]
    mirrored = viewer.add_image(np.ascontiguousarray(photo.data[:, ::-1]), name="retina mirrored", rgb=True)
    viewer.add_labels(np.ascontiguousarray(disc.data[:, ::-1]), name="retina mirrored optic disc",
                      colormap=dict(disc.colormap.color_dict), opacity=0.4)
    viewer.add_labels(np.ascontiguousarray(cup.data[:, ::-1]), name="retina mirrored optic cup",
                      colormap=dict(cup.colormap.color_dict), opacity=0.5)
    mirrored.visible = False
    for name in ("retina mirrored optic disc", "retina mirrored optic cup"):
        viewer.layers[name].visible = False
    viewer.reset_view()
    _, finetune = viewer.window.add_plugin_dock_widget("napari-attunet", "Fine-tune model", tabify=True)
    finetune.images.value = [photo, mirrored]
    finetune.epochs.value = 12
    finetune.learning_rate.value = 2e-4
    finetune.advanced.value = True
    finetune.batch_size.value = 2
    finetune.val_fraction.value = 0.5
    finetune.input_size.value = 128
    finetune.output.value = Path("/tmp/napari-attunet-screenshot/fine-tuned.safetensors")
    viewer.window._qt_window.resize(1600, 1000)
    job = finetune.train()
    if job is None:
        print(f"fine-tuning refused: {finetune.last_message}", file=sys.stderr)
        return 1
    while job.running and len(finetune.history) < 5:
        QApplication.processEvents()
        time.sleep(0.01)
    pump(1.5)  # a few training steps into the next epoch
    shot("finetune-training.png")
    finetune.cancel()
    wait(job)
    print(finetune.last_message)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
