"""The "Fine-tune model" widget in a real napari viewer: small, fast training runs (seconds)."""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

PLUGIN = "napari-attunet"
FINETUNE = "Fine-tune model"


def crop_with_labels(flip=False, size=256):
    """A crop of the sample photo with a synthetic disc/cup annotation (circles)."""
    from skimage import data

    image = data.retina()[560:560 + size, 180:180 + size]
    if flip:
        image = np.ascontiguousarray(image[:, ::-1])
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    return image, (r < size / 4).astype(np.uint8), (r < size / 9).astype(np.uint8)


def add_pair(viewer, name, flip=False):
    image, disc, cup = crop_with_labels(flip)
    layer = viewer.add_image(image, name=name, rgb=True)
    viewer.add_labels(disc, name=f"{name} optic disc")
    viewer.add_labels(cup, name=f"{name} optic cup")
    return layer


def small_settings(widget, out, epochs=2, batch_size=2):
    widget.epochs.value = epochs
    widget.batch_size.value = batch_size
    widget.val_fraction.value = 0.0
    widget.input_size.value = 64
    widget.augment.value = False
    widget.learning_rate.value = 1e-3
    widget.output.value = out


def dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, FINETUNE)
    return widget


def test_two_epoch_finetune_from_layers_then_segment_with_it(viewer, qtbot, tmp_path, messages):
    from napari_attunet import load_model
    from napari_attunet._widgets._session import DEFAULT_WEIGHTS
    from napari_attunet.training import TrainConfig

    layers = [add_pair(viewer, "left"), add_pair(viewer, "right", flip=True)]
    viewer.add_image(np.ones((64, 64)), name="unlabelled")
    widget = dock(viewer)
    assert list(widget.images.value) == layers  # preselected: the images with their two label layers
    out = tmp_path / "tuned.safetensors"
    small_settings(widget, out)
    job = widget.train()
    assert job is not None, widget.last_message
    assert widget.cancel_button.enabled and not widget.train_button.enabled
    qtbot.waitUntil(lambda: not job.running, timeout=300_000)
    assert job.outcome == "done", widget.last_message

    assert out.is_file() and widget.saved_path == out
    assert not out.with_name(out.name + ".resume.safetensors").exists()
    tuned = load_model(out, device="cpu")
    default = load_model(device="cpu")
    changed = [name for name, tensor in tuned.state_dict().items()
               if tensor.is_floating_point() and not np.allclose(tensor.numpy(), default.state_dict()[name].numpy())]
    assert changed, "fine-tuning did not change any weight"
    training = tuned.weights_info.metadata["training"]
    assert training["epochs_trained"] == 2 and training["config"]["init_weights"] == "default"
    recipe = TrainConfig.fine_tuning(2)  # the widget's defaults are the fine-tuning recipe's
    assert training["config"]["keep_start"] == recipe.keep_start > 0
    assert training["config"]["cup_distillation"] == recipe.cup_distillation
    assert "left" in training["data"] and "right" in training["data"]
    assert sorted(training["train_images"]) == ["left", "right"]
    assert tuned.weights_info.metadata["fine_tuned_from"]["sha256"] == default.weights_info.sha256
    # live feedback: one point per epoch in the plot, the bar full, a message with the file
    assert [h["epoch"] for h in widget.history] == [1, 2] and len(widget.plot.history) == 2
    assert widget.progress.value == widget.progress.max
    assert str(out) in messages[-1][1]
    # both annotations have the same cup: warned when training starts, and again with the result
    assert any(level == "show_warning" and "alike in size" in text for level, text in messages)
    assert "warning: the annotated cups are alike in size" in messages[-1][1]

    # hand the model to the segment widget in one click, and segment with it
    assert widget.use_button.enabled
    segment_widget = widget.use_in_segment()
    assert segment_widget is not None
    assert segment_widget.weights.value == "fine-tuned: tuned.safetensors"
    assert widget.start_from.choices[0] == DEFAULT_WEIGHTS
    assert "fine-tuned: tuned.safetensors" in widget.start_from.choices
    assert segment_widget.weights_path() == out
    seg_job = segment_widget.segment(layers[0])
    qtbot.waitUntil(lambda: not segment_widget.busy, timeout=120_000)  # result layers in the viewer
    assert seg_job.outcome == "done", segment_widget.last_message
    assert viewer.layers["left optic disc"].metadata["provenance"]["weights"] == "tuned.safetensors"


def test_cancel_keeps_the_best_checkpoint(viewer, qtbot, tmp_path, messages):
    from napari_attunet import load_model

    layers = [add_pair(viewer, f"crop{i}", flip=bool(i % 2)) for i in range(4)]
    widget = dock(viewer)
    widget.images.value = layers
    out = tmp_path / "cancelled.safetensors"
    small_settings(widget, out, epochs=30, batch_size=1)
    job = widget.train()
    assert job is not None, widget.last_message

    def cancel_after_first_epoch(event):
        if event.stage == "validate":
            widget.cancel()

    job.worker.yielded.connect(cancel_after_first_epoch)
    qtbot.waitUntil(lambda: not job.running, timeout=300_000)
    assert job.outcome == "cancelled"
    assert 1 <= len(widget.history) < 30
    assert out.is_file() and load_model(out, device="cpu").weights_info.metadata["training"]["epochs_trained"] >= 1
    assert "best checkpoint" in widget.last_message and widget.use_button.enabled
    assert widget.train_button.enabled and not widget.cancel_button.enabled


def test_finetune_from_a_folder(viewer, qtbot, tmp_path, messages):
    from napari_attunet import load_model
    from napari_attunet._widgets.finetune_widget import FROM_FOLDER
    from napari_attunet.image_files import mask_to_uint8, write_image

    folder = tmp_path / "data"
    for index in range(2):
        image, disc, cup = crop_with_labels(flip=bool(index))
        write_image(folder / f"eye{index}.png", image)
        write_image(folder / f"eye{index}_disc.png", mask_to_uint8(disc))
        write_image(folder / f"eye{index}_cup.png", mask_to_uint8(cup))
    widget = dock(viewer)
    widget.source.value = FROM_FOLDER
    assert not widget.folder.native.isHidden() and widget.images.native.isHidden()
    widget.folder.value = folder
    out = tmp_path / "from_folder.safetensors"
    small_settings(widget, out, epochs=1)
    job = widget.train()
    qtbot.waitUntil(lambda: not job.running, timeout=300_000)
    assert job.outcome == "done", widget.last_message
    assert str(folder) in load_model(out, device="cpu").weights_info.metadata["training"]["data"]


def test_wrong_inputs_show_a_message(viewer, qtbot, tmp_path, messages):
    from napari_attunet._widgets.finetune_widget import FROM_FOLDER
    from napari_attunet.weights import default_weights_path

    widget = dock(viewer)
    widget.output.value = tmp_path / "x.safetensors"
    assert widget.train() is None and "select at least one image" in messages[-1][1]

    lonely = viewer.add_image(crop_with_labels()[0], name="lonely", rgb=True)
    widget.images.value = [lonely]
    assert widget.train() is None and "'lonely optic disc'" in messages[-1][1]

    viewer.add_labels(np.zeros((256, 256), np.uint8), name="lonely optic disc")
    viewer.add_labels(np.zeros((256, 256), np.uint8), name="lonely optic cup")
    widget.images.value = [lonely]
    assert widget.train() is None and "disc labels are empty" in messages[-1][1]

    disc = np.zeros((256, 256), np.uint8)
    disc[100:150, 100:150] = 1
    viewer.layers["lonely optic disc"].data = disc
    widget.val_fraction.value = 0.9
    assert widget.train() is None and "holds out all 1 image" in messages[-1][1]
    widget.val_fraction.value = 0.2

    viewer.layers["lonely optic disc"].data = np.ones((100, 100), np.uint8)
    assert widget.train() is None and "cover the image" in messages[-1][1]

    widget.output.value = default_weights_path()
    assert widget.train() is None and "starting network" in messages[-1][1]

    widget.source.value = FROM_FOLDER
    widget.output.value = tmp_path / "x.safetensors"
    assert widget.train() is None and "choose a folder" in messages[-1][1]

    widget.folder.value = tmp_path  # a folder without images: the engine's message, from the worker
    job = widget.train()
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert job.outcome == "error" and "no images" in messages[-1][1]
    assert all(level == "show_error" for level, _ in messages)
    assert not (tmp_path / "x.safetensors").exists()
