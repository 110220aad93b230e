"""napari sample data: a fundus photograph that ships inside scikit-image (no download)."""

from __future__ import annotations


def retina_sample() -> list[tuple]:
    """``skimage.data.retina()``: a 1411 x 1411 RGB fundus photograph, public domain (CC0).

    The image is part of the scikit-image wheel itself, so nothing is downloaded.
    """
    from skimage import data

    return [(data.retina(), {"name": "retina", "rgb": True,
                             "metadata": {"source": "skimage.data.retina() (CC0 1.0, public domain)"}}, "image")]
