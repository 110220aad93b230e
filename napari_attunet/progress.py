"""Progress events and cancellation shared by inference and training.

The engine's long-running functions are generators of :class:`Progress` events
(``iter_segment``, ``iter_train``): a GUI worker forwards each event and stops the
work by closing the generator, which takes effect at the next event.  The plain
functions (``segment``, ``train``) consume the generator and accept a ``cancel``
callable that is polled at the same points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class Cancelled(RuntimeError):
    """Raised by the plain API when its ``cancel`` callable returned True."""


@dataclass
class Progress:
    """One step of work: ``step`` of ``total`` in ``stage``; ``result`` is set on the final event."""

    stage: str
    step: int
    total: int
    message: str = ""
    elapsed: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    result: Any = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    @property
    def eta(self) -> float:
        """Seconds left at the average pace so far (NaN before the first step)."""
        return self.elapsed / self.step * (self.total - self.step) if self.step else math.nan


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def run_to_end(events: Iterator[Progress], cancel: Callable[[], bool] | None = None,
               callback: Callable[[Progress], None] | None = None) -> Any:
    """Drive a progress generator to its end and return the final event's result."""
    result = None
    try:
        for event in events:
            if callback is not None:
                callback(event)
            if event.result is not None:
                result = event.result
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled during {event.stage} (step {event.step} of {event.total})")
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    return result
