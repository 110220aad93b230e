"""The "Fine-tune model" dock widget: a thin GUI over ``iter_train``.

Training pairs come from the viewer (an image layer and its disc and cup label layers:
the segment widget's output, e.g. corrected with the brush, label layers paired with
it in the segment widget, or named ``<image> optic disc`` and ``<image> optic cup``)
or from a folder in one of the engine's dataset layouts.
Training runs in a napari ``thread_worker``: a progress bar, loss and validation Dice
per epoch in a small plot, elapsed time and ETA; *Cancel* stops at the next training
step and keeps the best checkpoint written so far.  The saved weights (safetensors,
with metadata on the training data and settings) go to the segment widget in one click.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    PushButton,
    RadioButtons,
    Select,
    SpinBox,
)
from napari.utils.notifications import show_warning

from .._layers.inputs import training_pairs
from ..progress import Progress
from ._base import JobWidget
from ._choices import (
    device_choices,
    label_layers,
    missing_label_layers,
    photograph_choices,
)
from ._session import DEFAULT_WEIGHTS, FROM_FILE, chosen_weights, is_empty_path, session
from ._worker import PROGRESS_STEPS, forward

if TYPE_CHECKING:
    import napari

FROM_LAYERS = "image and label layers in the viewer"
FROM_FOLDER = "a folder of images and masks"
CUP_SIZE_WARNING = "cup sizes"
"""The stage of the event that warns that the annotated cups are alike in size (``cup_sizes``)."""


def default_output_path() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path.home() / "napari-attunet" / f"fine-tuned-{stamp}.safetensors"


def _duration(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _validation_dice(record: dict) -> str:
    return f", val Dice disc {record['dice_od']:.3f} cup {record['dice_oc']:.3f}" if "dice_od" in record else ""


class FinetuneWidget(JobWidget):
    """Fine-tune the Attention U-Net on annotated images."""

    action = "training"
    status_lines = 3
    cancelling_text = "cancelling after the current training step…"

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, run_text="Train")
        self.saved_path: Path | None = None
        self.cup_size_advice: str | None = None
        self._epochs_total = 0
        self._out: Path | None = None

        self.source = RadioButtons(label="training data", choices=[FROM_LAYERS, FROM_FOLDER], value=FROM_LAYERS)
        self.images = Select(label="images", choices=self._image_choices,
                             tooltip="each image needs its disc and cup label layers (from the segment widget, "
                                     "paired there, or named '<image> optic disc' and '<image> optic cup')")
        self.folder = FileEdit(label="folder", mode="d", visible=False,
                               tooltip="Drishti-GS1 (its training split), NAME_disc.png + NAME_cup.png masks, "
                                       "or REFUGE-style maps in masks/")
        self.start_from = ComboBox(label="start from", choices=lambda _: session.choices(), value=DEFAULT_WEIGHTS)
        self.start_file = FileEdit(label="weights file", mode="r", filter="*.safetensors", visible=False)
        from ..training import FINE_TUNE_STEPS, MIN_VALIDATION_IMAGES, TrainConfig

        # Defaults: the fine-tuning recipe (docs/adapting.md) for about 20 photos, 120 steps of 8 views.
        recipe = TrainConfig.fine_tuning(20)
        self.epochs = SpinBox(label="epochs", value=recipe.epochs, min=1, max=10000,
                              tooltip=f"the recipe: {FINE_TUNE_STEPS} steps of {recipe.batch_size} views "
                                      "(40 epochs for 20 photos, 24 for 40)")
        self.learning_rate = FloatSpinBox(label="learning rate", value=recipe.learning_rate, min=1e-5, max=1.0,
                                          step=1e-5)
        self.output = FileEdit(label="save to", mode="w", filter="*.safetensors", value=default_output_path())
        self.advanced = CheckBox(text="advanced settings", value=False)
        self.batch_size = SpinBox(label="batch size", value=recipe.batch_size, min=1, max=256)
        self.augment = CheckBox(text="augmentation (rotation, mirror, scale, colour, blur, noise)", value=True)
        self.val_fraction = FloatSpinBox(label="validation fraction", value=recipe.val_fraction, min=0.0, max=0.9,
                                         step=0.05, tooltip=f"0 keeps the last network (the recipe below "
                                                            f"{MIN_VALIDATION_IMAGES} photos)")
        self.freeze_encoder = CheckBox(text="freeze the encoder", value=False)
        self.keep_start = FloatSpinBox(label="blend with start", value=recipe.keep_start, min=0.0, max=0.95,
                                       step=0.05, tooltip="share of the starting network's weights blended into "
                                                          "the saved network (docs/adapting.md)")
        self.cup_distillation = FloatSpinBox(label="cup distillation", value=recipe.cup_distillation, min=0.0,
                                             max=100.0, step=0.1,
                                             tooltip="weight of a loss keeping the cup output close to the "
                                                     "starting network's")
        self.device = ComboBox(label="device", choices=device_choices(), value="auto")
        self.input_size = ComboBox(label="input size", choices=[64, 128, 192, 256, 320, 384, 512], value=256)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self._advanced_widgets = [self.batch_size, self.augment, self.val_fraction, self.freeze_encoder,
                                  self.keep_start, self.cup_distillation, self.device, self.input_size, self.seed]
        self.train_button = self.run_button
        self.use_button = PushButton(text="Use in Segment widget", enabled=False,
                                     tooltip="hand the trained weights to the segment widget")
        self.extend([
            self.source, self.images, self.folder, self.start_from, self.start_file, self.epochs,
            self.learning_rate, self.output, self.advanced, *self._advanced_widgets,
            self.buttons(), self.progress, self.status, self.use_button,
        ])
        self.finish_form()
        for widget in self._advanced_widgets:
            widget.visible = False

        from ._plot import TrainingPlot

        self.plot = TrainingPlot()
        self.native.layout().addWidget(self.plot.canvas)

        self.source.changed.connect(self._on_source)
        self.start_from.changed.connect(lambda v: setattr(self.start_file, "visible", v == FROM_FILE))
        self.advanced.changed.connect(self._on_advanced)
        self.train_button.changed.connect(lambda: self.train())
        self.use_button.changed.connect(lambda: self.use_in_segment())
        session.changed.connect(self._on_session_changed)
        self.layers_changed()

    # ------------------------------------------------------------------ choices

    @property
    def history(self) -> list[dict]:
        """Per-epoch records of the current or last run (the plot holds them)."""
        return self.plot.history

    def _image_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return photograph_choices(self.viewer)

    def layers_changed(self) -> None:
        try:
            self.images.reset_choices()
            if not self.images.value:  # nothing chosen yet: offer every image that has its two label layers
                self.images.value = [layer for _, layer in self._image_choices()
                                     if not missing_label_layers(self.viewer, layer)]
        except RuntimeError:  # pragma: no cover - widget already deleted
            pass

    def _on_session_changed(self) -> None:
        try:
            self.start_from.reset_choices()
        except RuntimeError:  # pragma: no cover - widget already deleted
            pass

    def _on_source(self, value: str) -> None:
        self.images.visible = value == FROM_LAYERS
        self.folder.visible = value == FROM_FOLDER

    def _on_advanced(self, value: bool) -> None:
        for widget in self._advanced_widgets:
            widget.visible = bool(value)

    # ------------------------------------------------------------------ inputs

    def layer_samples(self, layers=None) -> tuple[list, str]:
        """Training samples from image layers and their label layers; raises ValueError."""
        from ..datasets import make_sample

        layers = list(self.images.value if layers is None else layers)
        if not layers:
            raise ValueError("select at least one image layer (with its '<image> optic disc' and "
                             "'<image> optic cup' label layers)")
        samples, described = [], []
        for layer in layers:
            missing = missing_label_layers(self.viewer, layer)
            if missing:
                raise ValueError(f"'{layer.name}' has no label layer {' or '.join(repr(n) for n in missing)}; "
                                 "segment it first (then correct the labels), pair its labels in the segment "
                                 "widget, or name your label layers so")
            disc, cup = label_layers(self.viewer, layer)
            data = layer.data[0] if layer.multiscale else layer.data
            pairs, skipped = training_pairs(data, bool(layer.rgb), disc.data, cup.data, layer.name)
            for index, (image, disc_mask, cup_mask) in enumerate(pairs):
                name = layer.name if len(pairs) == 1 else f"{layer.name}[{index}]"
                samples.append(make_sample(name, image, disc_mask, cup_mask))
            described.append(f"{layer.name} ({len(pairs)} image{'s' * (len(pairs) != 1)}"
                             f"{f', {skipped} without disc skipped' if skipped else ''})")
        return samples, "napari layers: " + ", ".join(described)

    def init_weights(self) -> str:
        path = chosen_weights(self.start_from.value, self.start_file.value,
                              "choose the weights file to start from (.safetensors)")
        return "default" if path is None else str(path)

    def output_path(self, init: str) -> Path:
        from ..weights import default_weights_path

        value = self.output.value
        if is_empty_path(value):
            raise ValueError("choose where to save the fine-tuned weights")
        path = Path(value)
        if path.suffix.lower() != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        if path.is_dir():
            raise ValueError(f"{path} is a folder; choose a file name ending in .safetensors")
        protected = {default_weights_path().resolve()}
        if init != "default":
            protected.add(Path(init).resolve())
        if path.resolve() in protected:
            raise ValueError(f"{path.name} is the starting network; save the fine-tuned one under another name")
        return path

    def config(self, data_description: str, init: str):
        from ..training import TrainConfig

        epochs = int(self.epochs.value)
        config = TrainConfig(
            epochs=epochs,
            batch_size=int(self.batch_size.value),
            learning_rate=float(self.learning_rate.value),
            warmup_epochs=1 if epochs >= 5 else 0,
            val_fraction=float(self.val_fraction.value),
            val_every=1,
            seed=int(self.seed.value),
            input_size=int(self.input_size.value),
            augment=bool(self.augment.value),
            freeze_encoder=bool(self.freeze_encoder.value),
            keep_start=float(self.keep_start.value),
            cup_distillation=float(self.cup_distillation.value),
            init_weights=init,
            device=str(self.device.value),
            data_description=data_description,
            command="napari-attunet 'Fine-tune model' widget",
        )
        config.validate()
        return config

    # ------------------------------------------------------------------ training

    def train(self):
        """Check the inputs and start training; returns the running job (None when refused).

        The output file is checked in one place, :meth:`output_path`, before anything starts.
        """
        if self.refuse_if_busy():
            return None
        try:
            init = self.init_weights()
            out = self.output_path(init)
            if self.source.value == FROM_LAYERS:
                samples, description = self.layer_samples()
                folder = None
            else:
                folder = self.folder.value
                if is_empty_path(folder) or not Path(folder).is_dir():
                    raise ValueError("choose a folder of annotated images")
                samples, description = None, f"folder {folder}"
            config = self.config(description, init)
            if samples is not None:
                check_split(len(samples), config.val_fraction)
        except ValueError as error:
            self._message(str(error), "error")
            return None
        if out.exists() and not self.confirm_replace(out):
            self._message(f"{out.name} was kept; choose another file name to save to", "warning")
            return None
        self.plot.clear()
        self.saved_path = None
        self.cup_size_advice = None
        self.use_button.enabled = False
        self._epochs_total = config.epochs
        self._out = out
        # The person agreed to replace an existing file above.
        job = self.start_job(_train_job(samples, folder, out, config, overwrite=True), on_done=self._on_done)
        self.status.value = f"preparing {'the folder' if folder else f'{len(samples)} image(s)'}…"
        return job

    def confirm_replace(self, path: Path) -> bool:
        """Ask before training replaces an existing file."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self.native, "Replace weights file?",
                                      f"{path} exists. Replace it with the fine-tuned weights?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def describe_event(self, event: Progress) -> str:
        if event.stage == CUP_SIZE_WARNING:
            self.cup_size_advice = event.message
            show_warning(event.message)
            return f"warning: {event.message}"
        if event.stage not in ("train", "validate"):
            return event.message
        epoch = int(event.metrics.get("epoch", 0))
        timing = f"elapsed {_duration(event.elapsed)}, ETA {_duration(event.eta)}"
        if event.stage == "validate":
            record = {k: float(v) for k, v in event.metrics.items()}
            self.plot.add_epoch(record)
            return (f"epoch {epoch}/{self._epochs_total} done: loss {record['loss']:.4f}"
                    f"{_validation_dice(record)}\n{timing}")
        dice = _validation_dice(self.history[-1] if self.history else {})
        return (f"epoch {epoch}/{self._epochs_total}, step {event.step}/{event.total}, "
                f"loss {event.metrics.get('loss', math.nan):.4f}{dice}\n{timing}")

    def _on_done(self, path) -> None:
        self.saved_path = Path(path)
        self.progress.value = PROGRESS_STEPS
        self.use_button.enabled = True
        advice = f"\nwarning: {self.cup_size_advice}" if self.cup_size_advice else ""
        self._message(f"training finished; weights saved to {self.saved_path}{advice}")

    def on_cancelled(self) -> None:
        out = self._out
        if out is not None and Path(out).is_file() and self.history:
            self.saved_path = Path(out)
            self.use_button.enabled = True
            self._message(f"training cancelled after {len(self.history)} epoch(s); the best checkpoint "
                          f"so far is kept in {out}")
        else:
            self._message("training cancelled before the first epoch ended; no weights were saved", "warning")

    def on_finished(self) -> None:
        if self._out is not None:  # the engine's resume state; the widget does not resume, so it is not kept
            from ..training import resume_path

            resume_path(self._out).unlink(missing_ok=True)

    # ------------------------------------------------------------------ hand-over

    def use_in_segment(self):
        """Open (or find) the segment widget and select the weights trained here."""
        if self.saved_path is None or not self.saved_path.is_file():
            self._message("train (or cancel after an epoch) first: there are no weights to use yet", "error")
            return None
        widget = None
        try:
            _, widget = self.viewer.window.add_plugin_dock_widget("napari-attunet", "Segment optic disc & cup")
        except Exception as error:  # no Qt window (headless viewer) or plugin not registered
            show_warning(f"could not open the segment widget ({error}); the weights are in its menu")
        label = session.use(self.saved_path)
        if widget is not None and hasattr(widget, "use_weights"):
            widget.use_weights(label)
        self._message(f"the segment widget now uses {label}")
        return widget


def check_split(count: int, val_fraction: float) -> None:
    """Refuse a validation fraction that leaves no image to train on (the engine's split rule)."""
    from ..training import split_samples

    train, _ = split_samples(range(count), val_fraction, seed=0)
    if not train:
        raise ValueError(f"a validation fraction of {val_fraction:g} holds out all {count} image(s); "
                         "lower it (0 trains on every image without validation)")


def _train_job(samples, folder, out: Path, config, overwrite: bool = False):
    """Worker-thread side: load a folder when asked, then train."""
    from ..cup_sizes import cup_sizes
    from ..datasets import load_dataset
    from ..training import iter_train

    if samples is None:
        yield Progress("load", 0, 1, f"loading {folder}…")
        samples = load_dataset(folder, "train")
        check_split(len(samples), config.val_fraction)
        config.data_description = f"folder {folder} ({len(samples)} images)"
    advice = cup_sizes(samples).advice()
    if advice:
        yield Progress(CUP_SIZE_WARNING, 0, 1, advice)
    yield Progress("load", 0, 1, f"starting from {config.init_weights} weights, {len(samples)} image(s)…")
    return (yield from forward(iter_train(samples, out, config, overwrite=overwrite)))


def finetune_widget(napari_viewer: napari.viewer.Viewer) -> FinetuneWidget:
    """npe2 widget command."""
    return FinetuneWidget(napari_viewer)


__all__ = ["FinetuneWidget", "finetune_widget"]
