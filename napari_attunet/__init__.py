"""napari-attunet: optic disc and cup segmentation of fundus photographs with an Attention U-Net."""

__version__ = "0.1.0"

from .inference import SegmentationResult, iter_segment, segment  # noqa: E402
from .measure import Measurements, measure  # noqa: E402
from .model import AttentionUNet  # noqa: E402
from .weights import WeightsError, load_model, save_weights  # noqa: E402

__all__ = [
    "AttentionUNet",
    "Measurements",
    "SegmentationResult",
    "WeightsError",
    "__version__",
    "iter_segment",
    "load_model",
    "measure",
    "save_weights",
    "segment",
]
