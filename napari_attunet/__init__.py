"""napari-attunet: optic disc and cup segmentation of fundus photographs with an Attention U-Net.

The public names below are imported on first use (PEP 562), so that ``import napari_attunet``
and napari's reader, writers and sample data start without loading torch (about 2 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Imported now, not lazily: the function ``measure`` shares its name with its module, and a
# later import of the module would otherwise shadow the function.  numpy only, no torch.
from .measure import Measurements, measure  # noqa: E402

# public name -> the module that defines it
_EXPORTS = {
    "AttentionUNet": ".model",
    "SegmentationResult": ".inference",
    "Segmenter": ".inference",
    "WeightsError": ".weights",
    "iter_segment": ".inference",
    "load_model": ".weights",
    "save_weights": ".weights",
    "segment": ".inference",
}

__all__ = [
    "AttentionUNet",
    "Measurements",
    "SegmentationResult",
    "Segmenter",
    "WeightsError",
    "__version__",
    "iter_segment",
    "load_model",
    "measure",
    "save_weights",
    "segment",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on demand
    from .inference import SegmentationResult, Segmenter, iter_segment, segment
    from .model import AttentionUNet
    from .weights import WeightsError, load_model, save_weights


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
