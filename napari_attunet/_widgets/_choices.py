"""What both widgets offer or look up: photographs, devices, and the layers linked to a photo.

A photo and its result layers are linked by an identifier in their metadata
(``metadata[METADATA_KEY]``, see :mod:`napari_attunet._layers.links`), so renaming any of
them keeps the pairing.  Label layers that did not come from the segment widget
(opened from mask files, painted by hand) pair with a photo by today's names,
``<photo> optic disc`` and ``<photo> optic cup``, or by choosing them in the segment
widget, which links them.
"""

from __future__ import annotations

from typing import Any

from .._layers.links import (
    LABEL_ROLES,
    METADATA_KEY,
    PHOTO_ROLE,
    cup_layer_name,
    disc_layer_name,
    is_photo_metadata,
    new_photo_id,
    plugin_entry,
    with_link,
)


def photograph_choices(viewer) -> list[tuple[str, Any]]:
    """The viewer's image layers that are photographs (not the plugin's own attention or probability maps)."""
    from napari.layers import Image

    return [(layer.name, layer) for layer in viewer.layers
            if isinstance(layer, Image) and is_photo_metadata(layer.metadata)]


def label_choices(viewer) -> list[tuple[str, Any]]:
    """The viewer's Labels layers, by name."""
    from napari.layers import Labels

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Labels)]


def device_choices() -> list[str]:
    """``auto`` and the devices this machine has."""
    from ..devices import available_devices

    return ["auto", *available_devices()]


def photo_id(layer) -> str | None:
    """The link identifier a photo layer carries (None before its first segmentation or pairing)."""
    entry = plugin_entry(layer.metadata)
    return entry.get("id") if entry.get("role") == PHOTO_ROLE else None


def ensure_photo_id(viewer, layer) -> str:
    """The photo's link identifier, given to it now when it has none (or shares one with a copy)."""
    current = photo_id(layer)
    if current is not None and not any(other is not layer and photo_id(other) == current for other in viewer.layers):
        return current
    new = new_photo_id()
    layer.metadata = {**layer.metadata, METADATA_KEY: {"role": PHOTO_ROLE, "id": new}}
    return new


def linked_layers(viewer, photo) -> list:
    """The layers linked to ``photo`` by identifier, in layer-list order."""
    key = photo_id(photo)
    if key is None:
        return []
    return [layer for layer in viewer.layers
            if layer is not photo and plugin_entry(layer.metadata).get("photo") == key]


def photo_of(viewer, layer):
    """The photo layer ``layer`` is linked to (None: unlinked, or its photo was deleted)."""
    key = plugin_entry(layer.metadata).get("photo")
    if key is None:
        return None
    return next((other for other in viewer.layers if photo_id(other) == key), None)


def label_layers(viewer, photo) -> tuple[Any, Any]:
    """``(disc, cup)`` Labels layers of ``photo`` (either may be None).

    Linked layers first; else Labels layers named ``<photo> optic disc`` / ``<photo> optic cup``
    that are not linked to another photo in the viewer.
    """
    from napari.layers import Labels

    found: dict[str, Any] = {}
    for layer in linked_layers(viewer, photo):
        role = plugin_entry(layer.metadata).get("role")
        if isinstance(layer, Labels) and role in LABEL_ROLES:
            found.setdefault(role, layer)
    for role, name in zip(LABEL_ROLES, label_layer_names(photo.name)):
        if role not in found and name in viewer.layers:
            layer = viewer.layers[name]
            if isinstance(layer, Labels) and photo_of(viewer, layer) is None:
                found[role] = layer
    return found.get("disc"), found.get("cup")


def link_labels(viewer, photo, role: str, layer) -> None:
    """Pair ``layer`` with ``photo`` as its ``role`` ("disc" or "cup") labels; unpair the one it replaces."""
    key = ensure_photo_id(viewer, photo)
    for other in linked_layers(viewer, photo):
        if other is not layer and plugin_entry(other.metadata).get("role") == role:
            entry = {k: v for k, v in plugin_entry(other.metadata).items() if k != "photo"}
            other.metadata = {**other.metadata, METADATA_KEY: entry}
    if layer is not None:
        layer.metadata = with_link(layer.metadata, role, key, photo.name)


def label_layer_names(image_name: str) -> tuple[str, str]:
    return disc_layer_name(image_name), cup_layer_name(image_name)


def missing_label_layers(viewer, photo) -> list[str]:
    """What ``photo`` lacks of its disc and cup labels, as the names that would pair them."""
    return [name for name, layer in zip(label_layer_names(photo.name), label_layers(viewer, photo)) if layer is None]
