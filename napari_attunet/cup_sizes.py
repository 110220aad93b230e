"""Do the photos annotated for fine-tuning span the cup sizes the tuned network will meet?

Fine-tuning on a few photos learns their cup sizes along with the camera.  On a simulated
camera, tuning on 20 photos of glaucomatous eyes (large cups) raised the vCDR error on healthy
eyes (small cups) by 0.07 to 0.09, while it fell slightly on eyes like those tuned on
(docs/adapting.md).  So before training, the annotated cups' vertical cup-to-disc ratios are
summarised, and a set whose middle 80% spans less than :data:`NARROW_SPREAD` gets a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .measure import measure

NARROW_SPREAD = 0.2
"""vCDR between the 10th and the 90th percentile below which the annotated cups count as alike.
The pools of large cups that biased the tuned network spanned 0.11 to 0.19; pools matched to the
evaluation photos 0.26 to 0.35, the Drishti-GS1 training split 0.36."""

LARGE_CUP = 0.6
"""vCDR from which the annotated cups count as large when the warning suggests other eyes."""


@dataclass(frozen=True)
class CupSizes:
    """The vertical cup-to-disc ratios of annotated photos (a photo without a cup counts as 0)."""

    vcdrs: tuple[float, ...]

    @property
    def middle(self) -> tuple[float, float]:
        """The 10th and the 90th percentile (needs at least one photo)."""
        low, high = np.percentile(self.vcdrs, [10, 90])
        return float(low), float(high)

    @property
    def spread(self) -> float:
        low, high = self.middle
        return high - low

    def summary(self) -> str:
        if not self.vcdrs:
            return "annotated cups: no photo with a disc"
        values = np.asarray(self.vcdrs)
        return (f"annotated cups: vCDR {values.min():.2f} to {values.max():.2f}, median {np.median(values):.2f} "
                f"({len(values)} photo{'s' if len(values) != 1 else ''})")

    def advice(self) -> str | None:
        """A warning when the cups are alike in size, else None."""
        if not self.vcdrs or self.spread >= NARROW_SPREAD:
            return None
        low, high = self.middle
        span = (f"vCDR {low:.2f} to {high:.2f} for 80% of them" if len(self.vcdrs) >= 5
                else f"vCDR {min(self.vcdrs):.2f} to {max(self.vcdrs):.2f}")
        others = ("healthy eyes with small cups" if np.median(self.vcdrs) >= LARGE_CUP
                  else "glaucomatous eyes with large cups")
        return (f"the annotated cups are alike in size ({span}). Fine-tuning also learns their size: "
                "cups much smaller or larger than these may come out too close to it. If you will "
                f"measure such eyes, add annotated photos of them (for example {others}).")


def cup_sizes(samples: Sequence) -> CupSizes:
    """The cup sizes of annotated samples (anything with ``disc`` and ``cup`` masks); photos without a
    disc are left out (training refuses them, naming each)."""
    found = (measure(s.disc, s.cup) for s in samples)
    return CupSizes(tuple(float(m.vcdr) for m in found if m.disc_found))
