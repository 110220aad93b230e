"""What the two dock widgets share: a job with Run/Cancel, progress, messages, layer events.

:class:`JobWidget` starts one :class:`~napari_attunet._widgets._worker.Job` at a time,
shows its progress and status, turns its outcome into a message (in the widget and as
a napari notification), and runs follow-up work in the GUI thread a step per turn of
the event loop (:meth:`JobWidget.in_turns`), so that napari can draw in between.  A
subclass builds its own form and says what its job is and what to do with the result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator

from magicgui.widgets import Container, ProgressBar, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from ..progress import Progress
from ._text import TextArea
from ._worker import (
    PROGRESS_STEPS,
    CollectorPause,
    Job,
    failure_text,
    progress_value,
    settle_garbage_collector,
)


class JobWidget(Container):
    """A dock widget that runs one cancellable job at a time.

    Subclasses set :attr:`action` (e.g. ``"segmentation"``, for messages), build their form
    around :attr:`run_button`, :attr:`cancel_button`, :attr:`progress` and :attr:`status`,
    and override :meth:`describe_event`, :meth:`on_cancelled` and :meth:`layers_changed`.
    """

    action = "job"
    status_lines = 2
    cancelling_text = "cancelling (after the current step)…"

    def __init__(self, napari_viewer, run_text: str):
        super().__init__(labels=True)
        settle_garbage_collector()
        self.viewer = napari_viewer
        self.job: Job | None = None
        self.last_message = ""
        self._steps: deque[Callable[[], None]] = deque()
        self._stepping = False
        self._collector = CollectorPause()
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=PROGRESS_STEPS, value=0)
        self.status = TextArea(label="status", value="", lines=self.status_lines)
        self.cancel_button.changed.connect(self.cancel)

    def buttons(self) -> Container:
        """Run and Cancel side by side."""
        return Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False,
                         label=" ")

    def finish_form(self) -> None:
        """Call once the form is built: follows the layer list."""
        layers = self.viewer.layers
        for event in (layers.events.inserted, layers.events.removed, layers.events.moved):
            event.connect(self._on_layer_list)
        for layer in layers:
            layer.events.name.connect(self._on_layer_list)

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        """A job runs, or its results are still being put into the viewer."""
        return bool(self.job is not None and self.job.running) or bool(self._steps) or self._stepping

    def _message(self, text: str, level: str = "info") -> None:
        self.last_message = text
        self.status.value = text
        {"error": show_error, "warning": show_warning}.get(level, show_info)(text)

    def set_running(self, running: bool) -> None:
        """Enable the buttons that fit; subclasses add theirs."""
        self.run_button.enabled = not running
        self.cancel_button.enabled = running

    # ------------------------------------------------------------------ the job

    def start_job(self, generator: Generator, on_done: Callable) -> Job | None:
        """Run ``generator`` in a worker; ``on_done`` gets its return value in the GUI thread."""
        self.progress.value = 0
        self.set_running(True)
        self.job = Job(generator, on_event=self._on_event, on_done=on_done, on_error=self._on_error,
                       on_cancelled=self.on_cancelled, on_finished=self._on_finished)
        return self.job.start()

    def refuse_if_busy(self) -> bool:
        """True (with a message) when a job or its follow-up still runs."""
        if self.busy:
            self._message(f"a {self.action} is already running; wait or press Cancel", "warning")
            return True
        return False

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.status.value = self.cancelling_text
            self.job.cancel()

    def _on_event(self, event: Progress) -> None:
        self.progress.value = progress_value(event)
        self.status.value = self.describe_event(event)

    def describe_event(self, event: Progress) -> str:
        return f"{event.message} ({event.elapsed:.1f} s)"

    def _on_error(self, error: BaseException) -> None:
        self._message(failure_text(self.action, error), "error")

    def on_cancelled(self) -> None:
        self.progress.value = 0
        self._message(f"{self.action} cancelled")

    def on_finished(self) -> None:
        """Called once the job and its follow-up steps are over, whatever the outcome."""

    def _on_finished(self) -> None:
        if self._steps or self._stepping:  # after the result is in the viewer
            self.in_turns([self._end])
        else:
            self._end()

    def _end(self) -> None:
        self.set_running(False)
        self.on_finished()

    # ------------------------------------------------------------------ GUI work in turns

    def in_turns(self, steps) -> None:
        """Run ``steps`` (callables) in the GUI thread, one per turn of the event loop, after those queued."""
        self._steps.extend(steps)
        if not self._stepping:
            self._stepping = True
            self._collector.hold()
            self._schedule()

    def _schedule(self) -> None:
        from qtpy.QtCore import QTimer

        # 1 ms, not 0: a real timer, which Qt fires after timers already due (a heartbeat, a repaint timer),
        # so the loop turns between steps
        QTimer.singleShot(1, self._next_step)

    def _next_step(self) -> None:
        if not self._steps:
            self._stepping = False
            self._collector.release()
            return
        step = self._steps.popleft()
        try:
            step()
        except Exception as error:  # noqa: BLE001
            # shown to the person, never raised into napari
            self._steps.clear()
            try:
                self._message(failure_text(f"showing the {self.action}'s result", error), "error")
                if self.job is None or not self.job.running:
                    self._end()
            except RuntimeError:  # pragma: no cover - the widget was closed meanwhile
                pass
        self._schedule()

    # ------------------------------------------------------------------ layer events

    def _on_layer_list(self, event=None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._on_layer_list)
        try:
            self.layers_changed()
        except RuntimeError:  # pragma: no cover - this widget's Qt side was already deleted
            pass

    def layers_changed(self) -> None:
        """A layer was added, removed, moved or renamed."""


__all__ = ["PROGRESS_STEPS", "JobWidget"]
