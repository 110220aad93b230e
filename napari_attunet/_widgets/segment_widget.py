"""The "Segment optic disc & cup" dock widget: a thin GUI over ``iter_segment``.

The network runs in a napari ``thread_worker`` (progress bar, Cancel button, the
event loop keeps running); the result arrives as ready-made napari layers (built and
placed on the photo in the worker, from :func:`napari_attunet.result_layer_data`) and
is put into the viewer one layer per turn of the event loop, so that napari can draw in
between.  Then the
camera centres on the optic disc.  Result layers are linked to their photo by an
identifier in their metadata (:mod:`._choices`), so renaming any of them changes
nothing.  Bad input never raises into napari: the message appears in the widget and as
a napari notification.
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
    PushButton,
)

from .._layers.inputs import image_planes
from .._layers.links import LABEL_ROLES, plugin_entry
from .._layers.measurements import (
    RESULT_TEXT_LINES,
    csv_text,
    cup_outside_disc,
    format_measurements,
    measure_labels,
    measurement_rows,
    measurements_as_record,
)
from .._layers.results import disc_view, result_layer_data
from ..inference import NO_DISC_MESSAGE
from ..progress import Progress
from ..weights import stored_thresholds
from ._base import JobWidget
from ._choices import (
    device_choices,
    ensure_photo_id,
    label_choices,
    label_layers,
    link_labels,
    linked_layers,
    missing_label_layers,
    photo_of,
    photograph_choices,
)
from ._session import DEFAULT_WEIGHTS, FROM_FILE, chosen_weights, get_model, session
from ._text import TextArea
from ._worker import PROGRESS_STEPS, forward

if TYPE_CHECKING:
    import napari

DISC_SHARE_OF_VIEW = 1 / 3
"""After segmenting, the camera zooms so that the disc spans this share of the canvas's shorter side."""


def photo_transform(layer, ndim: int) -> dict:
    """Scale, translate, rotation, shear, affine and units of ``layer``'s last ``ndim`` axes (layer kwargs)."""
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


def same_transform(first: dict, second: dict) -> bool:
    """Whether two :func:`photo_transform` results place layers alike."""
    if first.keys() != second.keys():
        return False
    return all(first[key] == second[key] if key == "units" else
               np.shape(first[key]) == np.shape(second[key]) and np.allclose(first[key], second[key])
               for key in first)


def placement(photo_place: dict, offset=None) -> dict:
    """Transform kwargs that put a layer on a photo (its :func:`photo_transform`); its data start ``offset`` pixels in.

    The offset goes through the photo's scale, rotation and shear into ``translate``;
    the photo's affine applies after, as to the photo itself.
    """
    from napari.utils.transforms import CompositeAffine

    out = dict(photo_place)
    if offset is not None and any(offset):
        ndim = len(out["scale"])
        linear = CompositeAffine(scale=out["scale"], translate=np.zeros(ndim), rotate=out.get("rotate"),
                                 shear=out.get("shear"), ndim=ndim)
        shift = linear(np.asarray(offset, float)) - linear(np.zeros(ndim))
        out["translate"] = tuple(float(t) for t in np.asarray(out["translate"]) + shift)
    return out


def build_result_layers(layer_data: list[tuple], photo_place: dict) -> list:
    """napari layers made from LayerDataTuples and placed on their photo.

    Safe in a worker thread: a layer touches no Qt object until it is added to a viewer,
    so the GUI thread is left with adding them.
    """
    from napari.layers import Layer

    layers = []
    for data, kwargs, layer_type in layer_data:
        offset = plugin_entry(kwargs["metadata"]).get("offset")
        layers.append(Layer.create(data, {**kwargs, **placement(photo_place, offset)}, layer_type))
    return layers


def _move_to(layer, photo_place: dict) -> None:
    """Place a result layer on its photo again (the photo moved while its segmentation ran)."""
    for name, value in placement(photo_place, plugin_entry(layer.metadata).get("offset")).items():
        if name != "units":
            setattr(layer, name, value)


def _camera(viewer):
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def look_at_disc(viewer, photo, record, stack_shape=()) -> bool:
    """Centre the camera on the disc and zoom so that it spans :data:`DISC_SHARE_OF_VIEW` of the view.

    For a stack, the slice shown when it has a disc, else the first with one (the dims
    slider moves there).  Returns False when no slice has a disc (the view stays).
    """
    current = None
    if stack_shape:
        index = tuple(int(round(p)) for p in photo.world_to_data(viewer.dims.point)[:len(stack_shape)])
        if all(0 <= i < n for i, n in zip(index, stack_shape)):
            current = int(np.ravel_multi_index(index, stack_shape))
    view = disc_view(record, current)
    if view is None:
        return False
    slice_index, (y, x), extent = view
    lead = tuple(int(i) for i in np.unravel_index(slice_index, stack_shape)) if stack_shape else ()
    centre = np.asarray(photo.data_to_world((*lead, y, x)), float)
    half = extent / 2
    spans = [np.linalg.norm(np.subtract(photo.data_to_world((*lead, y + dy, x + dx)),
                                        photo.data_to_world((*lead, y - dy, x - dx))))
             for dy, dx in ((half, 0), (0, half))]
    extent_world = max(max(spans), 1e-9)
    if lead:
        viewer.dims.set_point(range(viewer.dims.ndim - len(centre), viewer.dims.ndim - 2), centre[:-2])
    camera = _camera(viewer)
    camera.center = tuple(float(c) for c in centre[-2:])
    camera.zoom = DISC_SHARE_OF_VIEW * min(viewer.canvas.size) / extent_world
    return True


class SegmentWidget(JobWidget):
    """Segment the optic disc and cup of a fundus photograph layer."""

    action = "segmentation"

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, run_text="Segment")
        self._shown_photo = None

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
        self.show_attention = CheckBox(text="attention maps (hidden layers, one per gate)", value=True)
        self.show_probabilities = CheckBox(text="probability maps", value=False)
        self.tta = CheckBox(text="average with the mirrored image (slower)", value=False)
        self.zoom_to_disc = CheckBox(text="zoom to the disc afterwards (Home shows all)", value=True)
        self.results = TextArea(label="result", value="", lines=RESULT_TEXT_LINES)
        self.disc_labels = ComboBox(label="disc labels", choices=self._label_choices, nullable=True,
                                    tooltip="the image's disc labels: its segmentation, or masks you opened or painted")
        self.cup_labels = ComboBox(label="cup labels", choices=self._label_choices, nullable=True,
                                   tooltip="the image's cup labels: its segmentation, or masks you opened or painted")
        self.measure_button = PushButton(text="Measure (edited labels)",
                                         tooltip="recompute vCDR and areas from the disc and cup labels "
                                                 "as they are now")
        self.export_button = PushButton(text="Export CSV…")
        self.extend([
            self.image, self.weights, self.weights_file, self.device, self.disc_threshold, self.cup_threshold,
            self.show_attention, self.show_probabilities, self.tta, self.zoom_to_disc,
            self.buttons(), self.progress, self.status, self.results, self.disc_labels, self.cup_labels,
            Container(widgets=[self.measure_button, self.export_button], layout="horizontal", labels=False,
                      label=" "),
        ])
        self.finish_form()

        self.weights.changed.connect(self._on_weights_choice)
        self.weights_file.changed.connect(self._follow_weights_thresholds)
        self.run_button.changed.connect(lambda: self.segment())
        self.measure_button.changed.connect(lambda: self.measure())
        self.export_button.changed.connect(self._export_dialog)
        self.image.changed.connect(lambda _value: self._show_state())
        # activated: a choice the person made (not the menu following the layer list)
        self.disc_labels.native.activated.connect(lambda _index: self._pair_labels("disc", self.disc_labels.value))
        self.cup_labels.native.activated.connect(lambda _index: self._pair_labels("cup", self.cup_labels.value))
        self.viewer.layers.selection.events.active.connect(self._on_active_layer)
        session.changed.connect(self._on_session_changed)
        session.selected.connect(self._on_session_selected)
        self.layers_changed()
        self._follow_weights_thresholds()

    # ------------------------------------------------------------------ choices

    def _image_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return photograph_choices(self.viewer)

    def _label_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return label_choices(self.viewer)

    def layers_changed(self) -> None:
        self.image.reset_choices()
        self.disc_labels.reset_choices()
        self.cup_labels.reset_choices()
        self._show_state()

    def _on_active_layer(self, event=None) -> None:
        """Follow the active layer when it is a photograph, or one of a photograph's result layers."""
        layer = self.viewer.layers.selection.active
        if layer is None:
            return
        photo = photo_of(self.viewer, layer) or layer
        for name, choice in self._image_choices():  # (napari may hand plugins proxies: compare names)
            if name == photo.name:
                self.image.value = choice
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

    # ------------------------------------------------------------------ what the widget shows

    def _show_state(self, force: bool = False) -> None:
        """Progress, status, result and label menus that describe the chosen image as the viewer holds it.

        Waits while a job runs or its result is being put in (``force``: its last step).
        """
        if self.busy and not force:
            return
        photo = self.image.value
        disc, cup = label_layers(self.viewer, photo) if photo is not None else (None, None)
        self.disc_labels.value = disc
        self.cup_labels.value = cup
        record = disc.metadata.get("measurements") if disc is not None and isinstance(disc.metadata, dict) else None
        if record is None:
            self.results.value = ""
            self.progress.value = 0
        else:
            edited = disc.metadata.get("measured_from") == "edited labels"
            confidence = None if edited else disc.metadata.get("confidence")
            self.results.value = format_measurements(record, confidence)
            self.progress.value = PROGRESS_STEPS
        if photo is not self._shown_photo:  # a different image: say where it stands
            self._shown_photo = photo
            if photo is None:
                self.status.value = "open a fundus photograph"
            elif record is None:
                self.status.value = f"'{photo.name}': press Segment"
            else:
                source = "edited labels" if disc.metadata.get("measured_from") == "edited labels" else \
                    f"segmented with {disc.metadata.get('provenance', {}).get('weights', 'the network')}"
                self.status.value = f"'{photo.name}': {source}"

    def _pair_labels(self, role: str, layer) -> None:
        """The person chose the image's disc or cup labels in the menu: link them to the image."""
        if self.image.value is None:
            return
        link_labels(self.viewer, self.image.value, role, layer)
        self._show_state()

    def on_finished(self) -> None:
        self._show_state()

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
        planes, stack_shape = image_planes(layer.data[0] if layer.multiscale else layer.data,
                                                   bool(layer.rgb), layer.name)
        from ..preprocessing import validate_image

        try:
            validate_image(planes[0])
        except ValueError as error:
            raise ValueError(f"'{layer.name}': {error}") from None
        return layer, planes, stack_shape

    def segment(self, layer=None):
        """Start segmenting; returns the running job (None when the input was refused)."""
        if self.refuse_if_busy():
            return None
        try:
            layer, planes, stack_shape = self.check_input(layer)
            weights = self.weights_path()
            thresholds = float(self.disc_threshold.value), float(self.cup_threshold.value)
        except ValueError as error:
            self._message(str(error), "error")
            return None
        request = {
            "planes": planes, "stack_shape": stack_shape, "name": layer.name, "weights": weights,
            "device": self.device.value, "thresholds": thresholds, "attention": bool(self.show_attention.value),
            "probabilities": bool(self.show_probabilities.value), "tta": bool(self.tta.value),
            "photo_id": ensure_photo_id(self.viewer, layer),
            "place": photo_transform(layer, len(stack_shape) + 2),
        }
        if stack_shape:
            self._message(f"'{layer.name}' is a stack of {len(planes)} images: segmenting each slice")
        else:
            self.status.value = f"segmenting '{layer.name}'…"
        return self.start_job(_segment_job(request), on_done=lambda payload: self.show_result(layer, *payload))

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.measure_button.enabled = not running

    def on_cancelled(self) -> None:
        self.progress.value = 0
        self._message("segmentation cancelled; no layers were changed")

    def show_result(self, photo, result, layers: list | None = None, placed_as: dict | None = None) -> None:
        """Put a segmentation of ``photo`` into the viewer (a layer per turn of the event loop) and report it.

        ``layers``: the result layers, made by :func:`build_result_layers` (in the worker)
        as ``photo`` was placed then (``placed_as``); made here when not given, with
        attention maps when ``result`` has them.
        """
        results = result if isinstance(result, list) else [result]
        stack_ndim = photo.ndim - 2
        stack_shape = tuple(photo.data.shape[:stack_ndim]) if not photo.multiscale else \
            tuple(photo.data[0].shape[:stack_ndim])
        place = photo_transform(photo, stack_ndim + 2)
        if layers is None:
            layer_data = result_layer_data(result, photo.name, photo_id=ensure_photo_id(self.viewer, photo),
                                           show_probabilities=bool(self.show_probabilities.value),
                                           stack_shape=stack_shape)
            layers = build_result_layers(layer_data, place)
        elif placed_as is not None and not same_transform(place, placed_as):
            for layer in layers:
                _move_to(layer, place)
        wanted = {_role_key(layer.metadata) for layer in layers}
        labels = [layer for layer in layers if _role_key(layer.metadata)[0] in LABEL_ROLES]
        maps = [layer for layer in layers if _role_key(layer.metadata)[0] not in LABEL_ROLES]
        metadata = labels[-1].metadata
        # What the person looks for first (disc, cup, the view on them) comes first; the maps follow,
        # hidden, below the labels.
        self.in_turns([lambda: self._remove_outdated(photo, wanted),
                       *[lambda layer=layer: self._put_layer(photo, layer) for layer in labels],
                       lambda: self._show_measurements(photo, metadata, stack_shape, pending=bool(maps)),
                       *[lambda layer=layer: self._put_layer(photo, layer, below="disc") for layer in maps],
                       lambda: self._report(photo, results, metadata)])

    def _remove_outdated(self, photo, wanted: set) -> None:
        """Remove the photo's result layers of an earlier run that this run does not make again."""
        if photo not in self.viewer.layers:
            raise RuntimeError(f"the image '{photo.name}' was removed from the viewer")
        for layer in linked_layers(self.viewer, photo):
            key = _role_key(layer.metadata)
            if key[0] not in LABEL_ROLES and key not in wanted:
                self.viewer.layers.remove(layer)

    def _put_layer(self, photo, new, below: str | None = None) -> Any:
        """Add the result layer ``new``, or move its data into the photo's layer of that role (keeping its name).

        ``below``: a new layer goes right below the photo's layer of this role (when there is one).
        """
        if photo not in self.viewer.layers:
            raise RuntimeError(f"the image '{photo.name}' was removed from the viewer")
        key = _role_key(new.metadata)
        linked = linked_layers(self.viewer, photo)
        existing = next((layer for layer in linked if _role_key(layer.metadata) == key), None)
        if key[0] in LABEL_ROLES and existing is None:  # masks the person paired by name or in the menu
            existing = label_layers(self.viewer, photo)[LABEL_ROLES.index(key[0])]
        if existing is not None and type(existing) is type(new) and existing.ndim == new.ndim:
            existing.data = new.data
            existing.metadata = new.metadata
            for name in ("scale", "translate", "rotate", "shear", "affine"):
                setattr(existing, name, getattr(new, name))
            return existing
        if existing is not None:
            self.viewer.layers.remove(existing)
        anchor = next((other for other in linked if _role_key(other.metadata)[0] == below), None)
        index = self.viewer.layers.index(anchor) if anchor in self.viewer.layers else len(self.viewer.layers)
        self.viewer.layers.insert(index, new)
        return new

    def _show_measurements(self, photo, metadata: dict, stack_shape: tuple, pending: bool) -> None:
        """The camera on the disc, the measurements, the disc labels selected for the brush."""
        if self.zoom_to_disc.value:
            look_at_disc(self.viewer, photo, metadata["measurements"], stack_shape)
        self._select_disc(photo)
        self._shown_photo = None
        self.image.value = photo
        self.results.value = format_measurements(metadata["measurements"], metadata.get("confidence"))
        if pending:
            self.status.value = f"'{photo.name}': adding the attention maps (hidden)…"

    def _select_disc(self, photo) -> None:
        """Make the photo's disc labels the active layer, ready for the brush."""
        disc = label_layers(self.viewer, photo)[0]
        if disc is not None and self.viewer.layers.selection.active is not disc:
            self.viewer.layers.selection.active = disc

    def _report(self, photo, results: list, metadata: dict) -> None:
        """The last step: the bar full, the disc labels active (adding a layer makes it active), a message."""
        self._select_disc(photo)
        self.progress.value = PROGRESS_STEPS
        first = results[0]
        messages = metadata["messages"]
        if NO_DISC_MESSAGE in messages:
            self._message(f"'{photo.name}': {'; '.join(messages)}. The empty disc and cup label layers "
                          "are ready to paint; press Measure afterwards", "warning")
        elif messages:
            self._message(f"'{photo.name}': {'; '.join(messages)}. Correct the labels with the brush "
                          "and press Measure", "warning")
        else:
            seconds = sum(r.seconds for r in results)
            self._message(f"'{photo.name}' segmented in {seconds:.1f} s "
                          f"({first.provenance.get('weights')}, {first.provenance.get('device')})")
        self._shown_photo = photo
        self._show_state(force=True)

    # ------------------------------------------------------------------ measurements

    def _label_layers(self, photo):
        """The photo's disc and cup labels (linked, named, or chosen in the menus); raises ValueError."""
        missing = missing_label_layers(self.viewer, photo)
        if missing:
            raise ValueError(f"'{photo.name}' has no {' or '.join(repr(n) for n in missing)} label layer: "
                             "segment it first, or choose its disc and cup labels in the menus below")
        disc, cup = label_layers(self.viewer, photo)
        link_labels(self.viewer, photo, "disc", disc)  # from now on they follow the photo through renames
        link_labels(self.viewer, photo, "cup", cup)
        return disc, cup

    def _photo_named(self, image_name: str | None):
        if image_name is None:
            if self.image.value is None:
                raise ValueError("no image chosen")
            return self.image.value
        for name, layer in self._image_choices():
            if name == image_name:
                return layer
        raise ValueError(f"no image layer '{image_name}'")

    def measure(self, image_name: str | None = None):
        """Recompute the measurements from the disc and cup labels as they are now (e.g. after editing)."""
        try:
            photo = self._photo_named(image_name)
            disc_layer, cup_layer = self._label_layers(photo)
            measured = measure_labels(disc_layer.data, cup_layer.data)
        except ValueError as error:
            self._message(str(error), "error")
            return None
        record = measurements_as_record(measured)
        for layer in (disc_layer, cup_layer):
            layer.metadata = {**layer.metadata, "measurements": record, "measured_from": "edited labels"}
        self.results.value = format_measurements(record)
        self.progress.value = PROGRESS_STEPS
        outside = cup_outside_disc(disc_layer.data, cup_layer.data)
        note = f"; {outside} cup pixels outside the disc were ignored" if outside else ""
        self._message(f"measured '{photo.name}' from its labels{note}", "warning" if outside else "info")
        return measured

    def measurement_rows(self) -> list[dict]:
        """One CSV row per segmented or measured image (per slice for stacks) in the viewer."""
        rows = []
        for layer in self.viewer.layers:
            own = plugin_entry(layer.metadata)
            if own.get("role") != "disc" or "measurements" not in layer.metadata:
                continue
            photo = photo_of(self.viewer, layer)
            name = photo.name if photo is not None else own.get("source", layer.name)
            edited = layer.metadata.get("measured_from") == "edited labels"
            rows += measurement_rows(name, layer.metadata["measurements"],
                                             layer.metadata.get("provenance", {}),
                                             "edited labels" if edited else "network",
                                             layer.metadata.get("confidence"))
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
            atomic_write_bytes(path, csv_text(rows).encode())
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


def _role_key(metadata) -> tuple:
    """What a result layer is, whatever its name: ``(role, gate)``."""
    entry = plugin_entry(metadata)
    return entry.get("role"), entry.get("gate")


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
    layer_data = result_layer_data(result, request["name"], photo_id=request["photo_id"],
                                   show_probabilities=request["probabilities"],
                                   stack_shape=request["stack_shape"])
    _prepare_napari()
    return result, build_result_layers(layer_data, request["place"]), request["place"]


def _prepare_napari() -> None:
    """Do here, off the GUI thread, the first-time work napari would do there when adding the result layers.

    napari builds a Labels layer's feature table with pandas (about 0.3 s to import), imports
    the Labels layer's controls and canvas overlays the first time one is added, and the
    overlay's outline (a vispy line) computes vispy's dash patterns (about 0.15 s; cached).
    """
    import importlib

    for module in ("pandas", "napari._qt.layer_controls.qt_labels_controls", "napari._vispy.layers.labels",
                   "napari._vispy.overlays.labels_polygon", "napari._vispy.overlays.labels_brush_stroke"):
        try:
            importlib.import_module(module)
        except ImportError:  # pragma: no cover - another napari version: the GUI thread imports what it needs
            pass
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()  # plain numpy; fills the module's pattern cache that every line visual reads
    except ImportError:  # pragma: no cover - another vispy version
        pass


def segment_widget(napari_viewer: napari.viewer.Viewer) -> SegmentWidget:
    """npe2 widget command."""
    return SegmentWidget(napari_viewer)


__all__ = ["SegmentWidget", "segment_widget"]
