"""How result layers find their photo: an identifier in the layers' metadata, and names as a fallback.

A photo layer that has results carries ``metadata[METADATA_KEY] == {"role": "photo", "id": ...}``;
each result layer carries ``{"role", "source", "photo", ...}``, ``photo`` being that identifier.
Renaming any layer keeps the link.  Masks that did not come from the plugin (opened by the
reader, painted by hand) are paired with their photo by the names made here.
"""

from __future__ import annotations

from typing import Any

METADATA_KEY = "napari_attunet"
"""Key in a layer's metadata holding ``{"role", "source", "photo", ...}`` for this plugin's layers."""
PHOTO_ROLE = "photo"
"""Role of a photo layer that has results: its ``metadata[METADATA_KEY]`` is ``{"role": "photo", "id": ...}``."""
LABEL_ROLES = ("disc", "cup")


def new_photo_id() -> str:
    """A fresh identifier linking a photo layer to its result layers."""
    import uuid

    return uuid.uuid4().hex


def plugin_entry(metadata: Any) -> dict:
    """``metadata[METADATA_KEY]`` of a layer (an empty dict for layers this plugin did not tag)."""
    entry = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return entry if isinstance(entry, dict) else {}


def is_photo_metadata(metadata: Any) -> bool:
    """Whether a layer with this metadata can be segmented (not one of the plugin's own maps)."""
    role = plugin_entry(metadata).get("role")
    return role is None or role == PHOTO_ROLE


def with_link(metadata: Any, role: str, photo_id: str, source: str) -> dict:
    """``metadata`` (copied) with its plugin entry pointing at the photo ``photo_id`` in ``role``."""
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata[METADATA_KEY] = {**plugin_entry(metadata), "role": role, "photo": photo_id, "source": source}
    return metadata


# --------------------------------------------------------------------------- names


def disc_layer_name(image_name: str) -> str:
    return f"{image_name} optic disc"


def cup_layer_name(image_name: str) -> str:
    return f"{image_name} optic cup"


def attention_layer_name(image_name: str, gate: int) -> str:
    """``gate`` counts from 1 (the finest gate)."""
    return f"{image_name} attention {gate}"


def probability_layer_name(image_name: str, structure: str) -> str:
    return f"{image_name} {structure} probability"


def output_layer_names(image_name: str, gates: int, probabilities: bool = False) -> list[str]:
    names = [attention_layer_name(image_name, k) for k in range(1, gates + 1)]
    if probabilities:
        names += [probability_layer_name(image_name, "disc"), probability_layer_name(image_name, "cup")]
    return names + [disc_layer_name(image_name), cup_layer_name(image_name)]

