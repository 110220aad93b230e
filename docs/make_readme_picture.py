"""The README's picture (docs/images/demo_overlay.png): the demo's result on the sample photo.

    python docs/make_readme_picture.py

Segments `skimage.data.retina()` with the shipped weights, as `tox -e demo` does, and
puts the whole photo beside a zoom of the crop the network analysed (disc red, cup yellow),
each 400 x 400 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "images" / "demo_overlay.png"
SIDE = 400


def main() -> int:
    import skimage.data

    from napari_attunet import segment
    from napari_attunet.image_files import write_image
    from napari_attunet.render import overlay

    image = skimage.data.retina()
    result = segment(image, device="cpu", attention=False)
    if result.crop_box is None:
        raise SystemExit("no optic disc found in the sample photo")
    picture = overlay(image, result.disc, result.cup)
    top, left, bottom, right = (max(0, v) for v in result.crop_box)
    whole = Image.fromarray(picture).resize((SIDE, SIDE), Image.LANCZOS)
    zoom = Image.fromarray(picture[top:bottom, left:right]).resize((SIDE, SIDE), Image.LANCZOS)
    write_image(OUT, np.concatenate([np.asarray(whole), np.asarray(zoom)], axis=1))
    print(f"wrote {OUT} (vCDR {result.vcdr:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
