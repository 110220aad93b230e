"""Real screenshots of the napari plugin for the user guide (docs/images/*.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--weights FILE]

Opens the window of ``python -m napari_attunet.demo --view`` as the demo leaves it; then
a fresh napari window, loads the sample photo through the plugin's sample-data entry,
runs the "Segment optic disc & cup" widget, shows the attention maps as the user guide
says, runs a short fine-tuning run in the "Fine-tune model" widget, and saves window
screenshots (``viewer.screenshot(canvas_only=False)``).
``--weights`` stands in for the shipped default weights (e.g. a checkpoint still in training).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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

    def idle(widget) -> None:
        while widget.busy:
            QApplication.processEvents()
            time.sleep(0.01)
        pump(0.5)

    # 0. The window of `python -m napari_attunet.demo --view`, right after the demo.
    import skimage.data

    from napari_attunet.demo import view
    from napari_attunet.inference import segment
    from napari_attunet.weights import load_model

    retina = skimage.data.retina()
    viewer, demo_widget = view(retina, segment(retina, load_model(device="cpu"), device="cpu"))
    idle(demo_widget)
    shot("demo-view.png")
    viewer.close()
    pump(1.0)

    viewer = napari.Viewer(title="napari-attunet")
    viewer.window.resize(1600, 1000)
    (photo,) = viewer.open_sample("napari-attunet", "retina")
    _, segment_widget = viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
    pump(1.0)

    # 1. The sample after Segment: the widget centres on the disc (red) and cup (yellow).
    job = segment_widget.segment()
    wait(job)
    idle(segment_widget)
    if job.outcome != "done":
        print(f"segmentation failed: {segment_widget.last_message}", file=sys.stderr)
        return 1
    disc = viewer.layers["retina optic disc"]
    cup = viewer.layers["retina optic cup"]
    gates = [layer for layer in viewer.layers if layer.name.startswith("retina attention")]
    shot("segment-sample.png")

    # 2. The user guide's way to look at an attention map: show it (eye icon), select it.
    gates[0].visible = True
    viewer.layers.selection.active = gates[0]
    shot("attention-maps.png")

    # 3. Every gate, one tile each (canvas only), finest first.
    tiles = []
    font = ImageFont.load_default(size=22)
    for layer in (disc, cup):
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
    for layer in (disc, cup):
        layer.visible = True

    # 4. Fine-tuning mid-training: the sample and its mirror image with their (corrected) labels.
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
    # a fresh folder: an existing file would stop the run at the widget's "replace it?" question
    finetune.output.value = Path(tempfile.mkdtemp(prefix="napari-attunet-screenshot-")) / "fine-tuned.safetensors"
    viewer.window.resize(1600, 1000)
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
