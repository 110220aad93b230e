"""Layer menus shared by the widgets."""

from __future__ import annotations

from typing import Any

from .. import _layers


def photograph_choices(viewer) -> list[tuple[str, Any]]:
    """The viewer's image layers that are photographs (not the plugin's own attention or probability maps)."""
    from napari.layers import Image

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Image)
            and not (isinstance(layer.metadata, dict) and _layers.METADATA_KEY in layer.metadata)]
