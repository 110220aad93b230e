"""What both widgets offer or look up: photographs, devices, an image's label layers."""

from __future__ import annotations

from typing import Any

from .. import _layers


def photograph_choices(viewer) -> list[tuple[str, Any]]:
    """The viewer's image layers that are photographs (not the plugin's own attention or probability maps)."""
    from napari.layers import Image

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Image)
            and not (isinstance(layer.metadata, dict) and _layers.METADATA_KEY in layer.metadata)]


def device_choices() -> list[str]:
    """``auto`` and the devices this machine has."""
    from ..devices import available_devices

    return ["auto", *available_devices()]


def label_layer_names(image_name: str) -> tuple[str, str]:
    return _layers.disc_layer_name(image_name), _layers.cup_layer_name(image_name)


def missing_label_layers(viewer, image_name: str) -> list[str]:
    """Which of the image's ``<image> optic disc`` / ``<image> optic cup`` layers the viewer lacks."""
    return [name for name in label_layer_names(image_name) if name not in viewer.layers]
