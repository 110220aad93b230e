"""Running one of the engine's progress generators in a napari ``thread_worker``.

The engine's long work (``iter_segment``, ``iter_train``) is a generator of
``Progress`` events; here it runs in a napari generator worker, so the event loop
keeps running, each event reaches the GUI through ``yielded``, and *Cancel* calls
``worker.quit()``: the worker stops at the next event.  superqt's worker stops
resuming the generator but does not close it, so :class:`Job` closes it when the
worker has finished; closing an engine generator runs its clean-up (a training run
keeps its best checkpoint).  Memory of a GPU is handed back at the end.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Generator, Iterator

from napari.qt.threading import create_worker

from ..progress import Progress

PROGRESS_STEPS = 1000
"""Resolution of the widgets' progress bars."""


def progress_value(event: Progress) -> int:
    """A progress bar value in ``0..PROGRESS_STEPS`` for an engine event."""
    return int(round(PROGRESS_STEPS * min(max(event.fraction, 0.0), 1.0)))


def failure_text(action: str, error: BaseException) -> str:
    """What the widgets say when a job raised: expected errors plainly, bugs with their type."""
    if isinstance(error, (ValueError, OSError, RuntimeError)):
        return f"{action} failed: {error}"
    return f"{action} failed ({type(error).__name__}): {error}"


def forward(events: Iterator[Progress]):
    """Yield an engine generator's events; return the result of its final event.

    Use as ``result = yield from forward(iter_segment(...))`` in a job: the engine
    generator is closed however the job ends (its clean-up runs on cancel).
    """
    result = None
    try:
        for event in events:
            if event.result is not None:
                result = event.result
            yield event
    finally:
        events.close()
    return result


_COLLECTOR_SETTLED = False


def settle_garbage_collector() -> None:
    """Exempt the objects of an open napari (its modules, Qt widgets, layers) from later full collections.

    A full garbage collection scans every tracked object; with napari, Qt and torch loaded it
    takes 0.2 to 0.3 s on a 2-core machine, and the many objects a first segmentation creates
    set one off while the result layers are added: a frozen window.  After one collection,
    :func:`gc.freeze` moves the survivors to a permanent generation that later collections
    skip (the collector itself is left on).  Once per process; cycles among those objects that
    become garbage later are not collected (they are the viewer's long-lived objects).
    """
    global _COLLECTOR_SETTLED
    if not _COLLECTOR_SETTLED:
        _COLLECTOR_SETTLED = True
        gc.collect()
        gc.freeze()


class CollectorPause:
    """Automatic garbage collection paused while result layers are put into the viewer.

    Building and adding layers allocates many objects, which sets off collections; one of the
    oldest generation (tens of milliseconds even after :func:`settle_garbage_collector`) then
    lands inside a step that already costs napari 150 ms or more.  Paused, the collection
    runs after the steps, in a turn of its own.  Nothing is lost: the collector only waits.
    Each widget holds its own pause; the collector comes back on when the last is released
    (and only if it was on before the first).
    """

    _holders = 0
    _switched_off = False

    def __init__(self):
        self._held = False

    def hold(self) -> None:
        if self._held:
            return
        self._held = True
        if CollectorPause._holders == 0 and gc.isenabled():
            gc.disable()
            CollectorPause._switched_off = True
        CollectorPause._holders += 1

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        CollectorPause._holders -= 1
        if CollectorPause._holders == 0 and CollectorPause._switched_off:
            CollectorPause._switched_off = False
            gc.enable()


def release_accelerator_memory() -> None:
    """Give cached CUDA memory back to the driver (no-op on CPU-only machines).

    Runs in the GUI thread, so it collects garbage only where there is GPU memory to free:
    a full collection with napari's objects in memory can freeze the window for 0.1 s or more.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


class Job:
    """A cancellable generator job with GUI callbacks (all called in the main thread).

    Args:
        generator: an unstarted generator (its code runs in the worker thread);
            its return value goes to ``on_done``.
        on_event: called with every yielded value.
        on_done: called with the return value when the job ran to its end.
        on_error: called with the exception when the job raised.
        on_cancelled: called when the job was cancelled.
        on_finished: called last, in every case.
    """

    def __init__(self, generator: Generator, *, on_event: Callable, on_done: Callable,
                 on_error: Callable[[BaseException], None], on_cancelled: Callable[[], None],
                 on_finished: Callable[[], None]):
        self._generator = generator
        self.cancelled = False
        self.running = False
        self.outcome: str | None = None  # "done", "error" or "cancelled" once the job has ended
        self._on_cancelled = on_cancelled
        self._on_finished = on_finished

        def run():
            return (yield from generator)

        def done(value):
            self.outcome = "done"
            on_done(value)

        def error(exception):
            self.outcome = "error"
            on_error(exception)

        def aborted():
            self.outcome = "cancelled"
            on_cancelled()

        # Connected at creation: errors go to ``on_error`` instead of being re-raised in the main thread.
        self.worker = create_worker(run, _start_thread=False, _connect={
            "yielded": on_event, "returned": done, "errored": error, "aborted": aborted,
            "finished": self._finish})

    def start(self) -> Job:
        self.running = True
        self.worker.start()
        return self

    def cancel(self) -> None:
        """Stop at the next progress event (the current step finishes first)."""
        if self.running and not self.cancelled:
            self.cancelled = True
            self.worker.quit()

    def _finish(self) -> None:
        self.running = False
        if self.outcome is None:  # cancelled just as the work ended: superqt then emits neither signal
            self.outcome = "cancelled"
            self._on_cancelled()
        try:
            self._generator.close()  # no-op when it ran to its end; else runs the engine's clean-up
        finally:
            release_accelerator_memory()
            self._on_finished()
