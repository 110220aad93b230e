"""The "Segment optic disc & cup" dock widget: a thin GUI over ``iter_segment``.

The network runs in a napari ``thread_worker`` (progress bar, Cancel button, the
event loop keeps running); the result arrives as ready-made layer data (built in the
worker by :func:`napari_attunet._layers.result_layer_data`) and is added, or replaces
the layers of an earlier run, in the main thread.  Bad input never raises into
napari: the message appears in the widget and as a napari notification.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
)
from napari.utils.notifications import show_error, show_info, show_warning

from .. import _layers
from ..inference import NO_DISC_MESSAGE
from ..progress import Progress
from ..weights import stored_thresholds
from ._session import DEFAULT_WEIGHTS, FROM_FILE, chosen_weights, get_model, session
from ._choices import device_choices, label_layer_names, missing_label_layers, photograph_choices
from ._worker import PROGRESS_STEPS, Job, failure_text, fixed_text_area, forward, progress_value

if TYPE_CHECKING:
    import napari

def _transform_kwargs(layer, ndim: int) -> dict:
    """Scale, translate, rotation, shear, affine and units of ``layer``'s last ``ndim`` axes."""
    out: dict[str, Any] = {
        "scale": tuple(float(s) for s in layer.scale[-ndim:]),
        "translate": tuple(float(t) for t in layer.translate[-ndim:]),
    }
    if layer.ndim == ndim:  # rotations and shears only carry over between layers of one dimensionality
        out["rotate"] = np.asarray(layer.rotate)
        out["shear"] = np.asarray(layer.shear)
        out["affine"] = np.asarray(layer.affine.affine_matrix)
        units = getattr(layer, "units", None)
        if units is not None:
            out["units"] = tuple(str(u) for u in units)
    return out


class SegmentWidget(Container):
    """Segment the optic disc and cup of a fundus photograph layer."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer"):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.job: Job | None = None
        self.last_message = ""

        self.image = ComboBox(label="image", choices=self._image_choices,
                              tooltip="the fundus photograph (RGB or grayscale; stacks go slice by slice)")
        self.weights = ComboBox(label="weights", choices=lambda _: session.choices(), value=DEFAULT_WEIGHTS,
                                tooltip="the shipped network, a weights file, or one fine-tuned in this session")
        self.weights_file = FileEdit(label="weights file", mode="r", filter="*.safetensors", visible=False)
        self.device = ComboBox(label="device", choices=device_choices(), value="auto")
        self.disc_threshold = FloatSpinBox(label="disc threshold", value=0.5, min=0.01, max=0.99, step=0.05,
                                           tooltip="set to the chosen weights' own value when they change")
        self.cup_threshold = FloatSpinBox(label="cup threshold", value=0.5, min=0.01, max=0.99, step=0.05,
                                          tooltip="set to the chosen weights' own value when they change")
        self.show_attention = CheckBox(text="attention maps (one layer per gate)", value=True)
        self.show_probabilities = CheckBox(text="probability maps", value=False)
        self.tta = CheckBox(text="average with the mirrored image (slower)", value=False)
        self.run_button = PushButton(text="Segment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=PROGRESS_STEPS, value=0)
        self.status = Label(label="status", value="")
        self.results = Label(label="result", value="")
        self.measure_button = PushButton(text="Measure (edited labels)",
                                         tooltip="recompute vCDR and areas from the disc and cup labels as they are now")
        self.export_button = PushButton(text="Export CSV…")
        self.extend([
            self.image, self.weights, self.weights_file, self.device, self.disc_threshold, self.cup_threshold,
            self.show_attention, self.show_probabilities, self.tta,
            Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False),
            self.progress, self.status, self.results,
            Container(widgets=[self.measure_button, self.export_button], layout="horizontal", labels=False,
                      label=" "),
        ])
        fixed_text_area(self.status, lines=2, wrap=True)
        fixed_text_area(self.results, lines=3)

        self.weights.changed.connect(self._on_weights_choice)
        self.weights_file.changed.connect(self._follow_weights_thresholds)
        self.run_button.changed.connect(lambda: self.segment())
        self.cancel_button.changed.connect(self.cancel)
        self.measure_button.changed.connect(lambda: self.measure())
        self.export_button.changed.connect(self._export_dialog)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed,
                      self.viewer.layers.events.moved):
            event.connect(self._layers_changed)
        self.viewer.layers.selection.events.active.connect(self._on_active_layer)
        session.changed.connect(self._on_session_changed)
        session.selected.connect(self._on_session_selected)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._on_rename)
        self._layers_changed()
        self._follow_weights_thresholds()

    # ------------------------------------------------------------------ choices

    def _image_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return photograph_choices(self.viewer)

    def _layers_changed(self, event=None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._on_rename)  # follow renames in the image menu
        self.image.reset_choices()
        self._refresh_results_label()

    def _on_rename(self, event=None) -> None:
        self.image.reset_choices()

    def _on_active_layer(self, event=None) -> None:
        """Follow the active layer when it is a photograph."""
        layer = self.viewer.layers.selection.active
        if layer is None:
            return
        for name, choice in self._image_choices():  # (napari may hand plugins proxies: compare names)
            if name == layer.name:
                self.image.value = choice
                self._refresh_results_label()
                return

    def _on_session_changed(self) -> None:
        try:
            self.weights.reset_choices()
        except RuntimeError:  # pragma: no cover - this widget's Qt side was already deleted
            session.changed.disconnect(self._on_session_changed)

    def _on_session_selected(self, label: str) -> None:
        try:
            self.use_weights(label)
        except RuntimeError:  # pragma: no cover - this widget's Qt side was already deleted
            session.selected.disconnect(self._on_session_selected)

    def _on_weights_choice(self, value: str) -> None:
        self.weights_file.visible = value == FROM_FILE
        self._follow_weights_thresholds()

    def _follow_weights_thresholds(self, _value=None) -> None:
        """Show the thresholds the chosen weights were measured with (their file's header says)."""
        try:
            disc, cup = stored_thresholds(self.weights_path())
        except ValueError:
            return  # no usable file chosen yet; segmenting will say why
        self.disc_threshold.value, self.cup_threshold.value = disc, cup

    def use_weights(self, label_or_path: str) -> None:
        """Select weights: a session label (fine-tuned model) or a file path."""
        self.weights.reset_choices()
        if label_or_path in self.weights.choices:
            self.weights.value = label_or_path
        else:
            self.weights.value = FROM_FILE
            self.weights_file.value = label_or_path

    def weights_path(self) -> Path | None:
        """The chosen weights file (None: the shipped default); raises ValueError when unusable."""
        return chosen_weights(self.weights.value, self.weights_file.value,
                              "choose a weights file (.safetensors), or use the default weights")

    # ------------------------------------------------------------------ messages

    def _message(self, text: str, level: str = "info") -> None:
        self.last_message = text
        self.status.value = text
        {"error": show_error, "warning": show_warning}.get(level, show_info)(text)

    # ------------------------------------------------------------------ segmentation

    def check_input(self, layer=None) -> tuple[Any, list[np.ndarray], tuple[int, ...]]:
        """Validate the chosen (or given) layer: ``(layer, planes, stack_shape)``; raises ValueError."""
        from napari.layers import Image

        layer = self.image.value if layer is None else layer
        if layer is None:
            raise ValueError("no image to segment: open a fundus photograph "
                             "(File > Open Sample > napari-attunet for an example)")
        if not isinstance(layer, Image):
            raise ValueError(f"'{layer.name}' is a {layer.__class__.__name__} layer; "
                             "choose an image layer holding a fundus photograph")
        planes, stack_shape = _layers.image_planes(layer.data[0] if layer.multiscale else layer.data,
                                                   bool(layer.rgb), layer.name)
        from ..preprocessing import validate_image

        try:
            validate_image(planes[0])
        except ValueError as error:
            raise ValueError(f"'{layer.name}': {error}") from None
        return layer, planes, stack_shape

    def segment(self, layer=None) -> Job | None:
        """Start segmenting; returns the running job (None when the input was refused)."""
        if self.job is not None and self.job.running:
            self._message("a segmentation is already running; wait or press Cancel", "warning")
            return None
        try:
            layer, planes, stack_shape = self.check_input(layer)
            weights = self.weights_path()
            thresholds = float(self.disc_threshold.value), float(self.cup_threshold.value)
        except ValueError as error:
            self._message(str(error), "error")
            return None
        device = self.device.value
        transform = _transform_kwargs(layer, len(stack_shape) + 2)
        request = {
            "planes": planes, "stack_shape": stack_shape, "name": layer.name, "weights": weights,
            "device": device, "thresholds": thresholds, "attention": bool(self.show_attention.value),
            "probabilities": bool(self.show_probabilities.value), "tta": bool(self.tta.value),
        }
        if stack_shape:
            self._message(f"'{layer.name}' is a stack of {len(planes)} images: segmenting each slice")
        else:
            self.status.value = f"segmenting '{layer.name}'…"
        self.progress.value = 0
        self._set_running(True)
        self.job = Job(_segment_job(request), on_event=self._on_event,
                       on_done=lambda payload: self._on_done(payload, layer, transform),
                       on_error=self._on_error, on_cancelled=self._on_cancelled,
                       on_finished=lambda: self._set_running(False))
        return self.job.start()

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.status.value = "cancelling (after the current step)…"
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        self.measure_button.enabled = not running

    def _on_event(self, event: Progress) -> None:
        self.progress.value = progress_value(event)
        self.status.value = f"{event.message} ({event.elapsed:.1f} s)"

    def _on_error(self, error: BaseException) -> None:
        self._message(failure_text("segmentation", error), "error")

    def _on_cancelled(self) -> None:
        self.progress.value = 0
        self._message("segmentation cancelled; no layers were changed")

    def _on_done(self, payload, source_layer, transform: dict) -> None:
        results, layer_data = payload
        for _, kwargs, _ in layer_data:
            kwargs.update(transform)
        self.put_layers(layer_data, source_layer.name)
        self.progress.value = PROGRESS_STEPS
        metadata = layer_data[-1][1]["metadata"]
        self.results.value = _layers.format_measurements(metadata["measurements"])
        first = results[0] if isinstance(results, list) else results
        messages = metadata["messages"]
        if NO_DISC_MESSAGE in messages:
            self._message(f"'{source_layer.name}': {'; '.join(messages)}. The empty disc and cup label layers "
                          "are ready to paint; press Measure afterwards", "warning")
        elif messages:
            self._message(f"'{source_layer.name}': {'; '.join(messages)}. Correct the labels with the brush "
                          "and press Measure", "warning")
        else:
            self._message(f"'{source_layer.name}' segmented in {first.seconds:.1f} s "
                          f"({first.provenance.get('weights')}, {first.provenance.get('device')})")

    def put_layers(self, layer_data: list[tuple], source: str) -> list:
        """Add the result layers, replacing those of an earlier run on the same image."""
        from napari.layers import Image, Labels, Layer

        kinds = {"image": Image, "labels": Labels}
        names = {kwargs["name"] for _, kwargs, _ in layer_data}
        for layer in list(self.viewer.layers):  # outputs of an earlier run that this one does not make
            own = layer.metadata.get(_layers.METADATA_KEY) if isinstance(layer.metadata, dict) else None
            if own and own.get("source") == source and layer.name not in names:
                self.viewer.layers.remove(layer)
        layers = []
        for data, kwargs, layer_type in layer_data:
            name = kwargs["name"]
            existing = self.viewer.layers[name] if name in self.viewer.layers else None
            if existing is not None and isinstance(existing, kinds[layer_type]) and existing.ndim == data.ndim:
                existing.data = data
                existing.metadata = kwargs["metadata"]
                for key in ("scale", "translate", "rotate", "shear", "affine"):
                    if key in kwargs:
                        setattr(existing, key, kwargs[key])
                layers.append(existing)
                continue
            if existing is not None:
                self.viewer.layers.remove(existing)
            layers.append(self.viewer.add_layer(Layer.create(data, kwargs, layer_type)))
        return layers

    # ------------------------------------------------------------------ measurements

    def _label_layers(self, image_name: str):
        missing = missing_label_layers(self.viewer, image_name)
        if missing:
            raise ValueError(f"no label layer {' or '.join(repr(n) for n in missing)}: segment '{image_name}' "
                             "first, or name your disc and cup label layers like that")
        return tuple(self.viewer.layers[name] for name in label_layer_names(image_name))

    def _refresh_results_label(self) -> None:
        layer = self.image.value
        if layer is None:
            self.results.value = ""
            return
        name = _layers.disc_layer_name(layer.name)
        if name in self.viewer.layers:
            record = self.viewer.layers[name].metadata.get("measurements")
            if record is not None:
                self.results.value = _layers.format_measurements(record)
                return
        self.results.value = ""

    def measure(self, image_name: str | None = None):
        """Recompute the measurements from the disc and cup labels as they are now (e.g. after editing)."""
        try:
            if image_name is None:
                if self.image.value is None:
                    raise ValueError("no image chosen")
                image_name = self.image.value.name
            disc_layer, cup_layer = self._label_layers(image_name)
            measured = _layers.measure_labels(disc_layer.data, cup_layer.data)
        except ValueError as error:
            self._message(str(error), "error")
            return None
        record = _layers.measurements_as_record(measured)
        for layer in (disc_layer, cup_layer):
            layer.metadata = {**layer.metadata, "measurements": record, "measured_from": "edited labels"}
        self.results.value = _layers.format_measurements(record)
        outside = _layers.cup_outside_disc(disc_layer.data, cup_layer.data)
        note = f"; {outside} cup pixels outside the disc were ignored" if outside else ""
        self._message(f"measured '{image_name}' from its labels{note}", "warning" if outside else "info")
        return measured

    def measurement_rows(self) -> list[dict]:
        """One CSV row per segmented image (per slice for stacks) in the viewer."""
        rows = []
        for layer in self.viewer.layers:
            own = layer.metadata.get(_layers.METADATA_KEY) if isinstance(layer.metadata, dict) else None
            if not own or own.get("role") != "disc" or "measurements" not in layer.metadata:
                continue
            source = "edited labels" if layer.metadata.get("measured_from") == "edited labels" else "network"
            rows += _layers.measurement_rows(own.get("source", layer.name), layer.metadata["measurements"],
                                             layer.metadata.get("provenance", {}), source)
        return rows

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the measurements of every segmented image as CSV (atomically)."""
        from ..weights import atomic_write_bytes

        rows = self.measurement_rows()
        if not rows:
            self._message("nothing to export: segment an image first", "error")
            return None
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_suffix(".csv")
        try:
            atomic_write_bytes(path, _layers.csv_text(rows).encode())
        except OSError as error:
            self._message(f"could not write {path}: {error}", "error")
            return None
        self._message(f"measurements of {len(rows)} image(s) written to {path}")
        return path

    def _export_dialog(self) -> None:  # pragma: no cover - needs a person at the dialog
        from qtpy.QtWidgets import QFileDialog

        start = str(Path.home() / "napari-attunet-measurements.csv")
        path, _ = QFileDialog.getSaveFileName(self.native, "Export measurements", start, "CSV (*.csv)")
        if path:
            self.export_csv(path)


def _segment_job(request: dict):
    """Worker-thread side: load the network, segment, build the layer data."""
    from ..inference import iter_segment

    clock_start = Progress("load", 0, 1, "loading the network")
    yield clock_start
    model = get_model(request["weights"], request["device"])
    planes = request["planes"]
    disc_t, cup_t = request["thresholds"]
    result = yield from forward(iter_segment(planes if request["stack_shape"] else planes[0], model,
                                             request["device"], disc_threshold=disc_t, cup_threshold=cup_t,
                                             attention=request["attention"], tta=request["tta"]))
    layer_data = _layers.result_layer_data(result, request["name"], show_probabilities=request["probabilities"],
                                           stack_shape=request["stack_shape"])
    _preload_label_layer_modules()
    return result, layer_data


def _preload_label_layer_modules() -> None:
    """Import here, off the GUI thread, what napari's first Labels layer would import there.

    napari builds a Labels layer's feature table with pandas; importing it takes about
    0.3 s, which the GUI thread would otherwise spend the first time results are added.
    """
    try:
        import pandas  # noqa: F401
    except ImportError:  # pragma: no cover - napari depends on pandas
        pass


def segment_widget(napari_viewer: "napari.viewer.Viewer") -> SegmentWidget:
    """npe2 widget command."""
    return SegmentWidget(napari_viewer)


__all__ = ["SegmentWidget", "segment_widget"]
