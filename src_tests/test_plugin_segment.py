"""The "Segment optic disc & cup" widget in a real napari viewer (run under Xvfb: ``xvfb-run -a pytest``).

Tests check behaviour, never the exact numbers of the shipped weights.
"""

import csv
import gc
import itertools
import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

PLUGIN = "napari-attunet"
SEGMENT = "Segment optic disc & cup"
FINETUNE = "Fine-tune model"


def dock_segment(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, SEGMENT)
    return widget


def open_sample(viewer):
    (layer,) = viewer.open_sample(PLUGIN, "retina")
    return layer


def run(qtbot, widget, layer=None, timeout=180_000):
    """Segment and wait until the result layers are in the viewer (they arrive over several loop turns)."""
    job = widget.segment(layer)
    assert job is not None, widget.last_message
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    return job


def result_layers(viewer, source="retina"):
    from napari_attunet._layers.links import METADATA_KEY

    return [layer for layer in viewer.layers
            if isinstance(layer.metadata, dict) and layer.metadata.get(METADATA_KEY, {}).get("source") == source]


def test_widgets_dock_and_appear_in_the_menus(viewer):
    from napari._app_model import get_app_model

    from napari_attunet._widgets.finetune_widget import FinetuneWidget
    from napari_attunet._widgets.segment_widget import SegmentWidget

    segment_widget = dock_segment(viewer)
    _, finetune_widget = viewer.window.add_plugin_dock_widget(PLUGIN, FINETUNE)
    assert isinstance(segment_widget, SegmentWidget) and isinstance(finetune_widget, FinetuneWidget)
    assert segment_widget.image.value is None  # nothing to segment yet
    layer = open_sample(viewer)
    assert layer.name == "retina" and layer.rgb and layer.data.shape == (1411, 1411, 3)
    assert segment_widget.image.value is layer  # the menu follows the layer list
    assert layer in finetune_widget.images.choices
    menu = get_app_model().menus.get_menu("napari/layers/segment")
    commands = {item.command.id for item in menu if hasattr(item, "command")}
    assert {"napari-attunet.segment_widget", "napari-attunet.finetune_widget"} <= commands


def test_segment_the_sample(viewer, qtbot, messages, tmp_path):
    from napari_attunet._layers.links import output_layer_names
    from napari_attunet._widgets._session import get_model

    image = open_sample(viewer)
    image.scale = (0.5, 0.25)  # outputs must lie exactly on the photo, whatever its transform
    image.translate = (10.0, -4.0)
    widget = dock_segment(viewer)
    widget.show_probabilities.value = True
    job = run(qtbot, widget)
    assert job.outcome == "done", widget.last_message

    gates = get_model(None, "auto").num_gates
    names = output_layer_names("retina", gates, probabilities=True)
    assert [layer.name for layer in result_layers(viewer)] == names
    assert [layer.name for layer in viewer.layers] == ["retina", *names]
    for layer in result_layers(viewer):
        np.testing.assert_allclose(layer.scale, image.scale)
        if type(layer).__name__ == "Labels":  # photo-sized: the brush works anywhere
            assert layer.data.shape == (1411, 1411)
            np.testing.assert_allclose(layer.translate, image.translate)
            np.testing.assert_allclose(layer.extent.world, image.extent.world)
        else:  # maps: the analysed crop only
            assert layer.data.shape[0] < 1411 and layer.data.shape[1] < 1411
    disc = viewer.layers["retina optic disc"]
    cup = viewer.layers["retina optic cup"]
    assert type(disc).__name__ == "Labels" and disc.data.dtype == np.uint8 and cup.data.dtype == np.uint8
    assert set(np.unique(disc.data)) == {0, 1}  # the sample has a disc
    assert set(np.unique(cup.data)) <= {0, 1}
    assert not np.any(cup.data & ~disc.data)  # cup inside disc
    assert np.ravel(disc.colormap.map(1)).tolist() == pytest.approx([1, 0, 0, 1])  # red
    assert np.ravel(cup.colormap.map(1)).tolist() == pytest.approx([1, 1, 0, 1])  # yellow
    attention = [viewer.layers[f"retina attention {k}"] for k in range(1, gates + 1)]
    for layer in attention:
        assert layer.data.dtype == np.float32 and 0.0 <= layer.data.min() and layer.data.max() <= 1.0
        assert layer.colormap.name == "inferno" and layer.blending == "additive"
        assert tuple(layer.contrast_limits) == (0.0, 1.0)
        assert not layer.visible  # added hidden: the disc and cup stay readable
    assert viewer.layers.index(disc) > max(viewer.layers.index(layer) for layer in attention)  # labels on top
    record = disc.metadata["measurements"]
    assert record["disc_found"] and 0.0 <= record["vcdr"] <= 1.0
    assert record["disc_area"] == int(disc.data.sum()) and record["cup_area"] == int(cup.data.sum())
    provenance = disc.metadata["provenance"]
    assert provenance["weights"] and len(provenance["weights_sha256"]) == 64
    assert provenance["disc_threshold"] == 0.5
    assert "vCDR" in widget.results.value and f"{record['vcdr']:.3f}" in widget.results.value
    assert "confidence" in widget.results.value and "confidence" in disc.metadata
    assert widget.progress.value == widget.progress.max
    if disc.metadata["confidence"] < 0.79:  # the shipped outline of the sample takes in part of its halo
        assert "low confidence: check the outline" in widget.status.value
        assert messages[-1][0] == "show_warning" and "low confidence" in messages[-1][1]
    else:
        assert "segmented" in widget.status.value
        assert messages[-1][0] == "show_info" and "segmented" in messages[-1][1]

    # Running again replaces the layers (same objects, updated data) instead of piling up copies;
    # outputs no longer asked for go away.
    widget.show_probabilities.value = False
    widget.disc_threshold.value = 0.3
    before = {layer.name: layer for layer in viewer.layers}
    job = run(qtbot, widget)
    assert job.outcome == "done"
    assert [layer.name for layer in viewer.layers] == ["retina", *output_layer_names("retina", gates)]
    assert viewer.layers["retina optic disc"] is before["retina optic disc"]
    assert viewer.layers["retina optic disc"].metadata["provenance"]["disc_threshold"] == pytest.approx(0.3)

    # The person corrects the cup with the brush (here: erases its top half) and measures again.
    cup = viewer.layers["retina optic cup"]
    disc = viewer.layers["retina optic disc"]
    rows = np.flatnonzero(cup.data.any(axis=1))
    edited = cup.data.copy()
    edited[: (rows[0] + rows[-1]) // 2] = 0
    cup.data = edited
    measured = widget.measure()
    assert measured.cup_area == int(edited.sum()) and measured.vcdr < record["vcdr"] + 1e-9
    assert disc.metadata["measurements"]["cup_area"] == int(edited.sum())
    assert disc.metadata["measured_from"] == "edited labels"
    assert f"{measured.vcdr:.3f}" in widget.results.value

    # CSV export of the measurements with provenance
    path = widget.export_csv(tmp_path / "measurements.csv")
    (row,) = list(csv.DictReader(path.open()))
    assert row["image"] == "retina" and row["source"] == "edited labels"
    assert float(row["vcdr"]) == pytest.approx(measured.vcdr)
    assert row["weights_sha256"] == provenance["weights_sha256"] and row["package_version"]
    assert [p.name for p in tmp_path.iterdir()] == ["measurements.csv"]


def test_threshold_boxes_follow_the_chosen_weights(viewer, tmp_path):
    from napari_attunet import load_model, save_weights
    from napari_attunet._widgets._session import DEFAULT_WEIGHTS, FROM_FILE
    from napari_attunet.weights import stored_thresholds

    widget = dock_segment(viewer)
    shipped = stored_thresholds()
    assert (widget.disc_threshold.value, widget.cup_threshold.value) == pytest.approx(shipped)
    other = tmp_path / "other.safetensors"
    save_weights(load_model(device="cpu"), other, {"thresholds": {"disc": 0.4, "cup": 0.35}})
    widget.weights.value = FROM_FILE
    widget.weights_file.value = other
    assert (widget.disc_threshold.value, widget.cup_threshold.value) == pytest.approx((0.4, 0.35))
    widget.weights.value = DEFAULT_WEIGHTS
    assert (widget.disc_threshold.value, widget.cup_threshold.value) == pytest.approx(shipped)


def test_the_event_loop_turns_while_computing_and_between_result_layers(viewer, qtbot):
    """A heartbeat timer ticks while the network computes and between the additions of the result layers."""
    from qtpy.QtCore import QTimer

    open_sample(viewer)
    widget = dock_segment(viewer)
    ticks, added = [], []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    collector_on_while_adding = []
    viewer.layers.events.inserted.connect(lambda event: (added.append(time.perf_counter()),
                                                         collector_on_while_adding.append(gc.isenabled())))
    timer.start()
    window = {}
    show_result = widget.show_result

    def arrived(*args):
        window["result"] = time.perf_counter()
        show_result(*args)

    widget.show_result = arrived
    window["start"] = time.perf_counter()
    job = run(qtbot, widget)
    timer.stop()
    assert job.outcome == "done", widget.last_message
    assert len(added) == len(result_layers(viewer)) >= 3  # attention maps, disc, cup
    assert any(window["start"] < t < window["result"] for t in ticks)  # the loop turned while computing
    for before, after in itertools.pairwise(added):
        assert any(before < t < after for t in ticks), "a result layer was added in the same loop turn as the last"
    # no garbage collection lands inside a layer addition, and the collector is back on afterwards
    assert not any(collector_on_while_adding)
    assert gc.isenabled()


def test_the_collector_comes_back_on_when_the_last_widget_has_shown_its_result():
    from napari_attunet._widgets._worker import CollectorPause

    segment, finetune = CollectorPause(), CollectorPause()
    segment.hold()
    finetune.hold()
    segment.release()
    assert not gc.isenabled()  # the other widget still adds layers
    finetune.release()
    assert gc.isenabled()
    gc.disable()  # a collector switched off by someone else stays off
    try:
        segment.hold()
        segment.release()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_cancel(viewer, qtbot, messages, monkeypatch):
    open_sample(viewer)
    widget = dock_segment(viewer)
    job = widget.segment()
    assert widget.cancel_button.enabled and not widget.run_button.enabled
    widget.cancel()  # at once: stops before the network has run
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert job.outcome == "cancelled"
    assert result_layers(viewer) == []
    assert "cancelled" in widget.last_message
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    # cancel on the first progress event (in the worker thread, so that even a fast GPU cannot finish
    # first): the work stops before the next step
    from qtpy.QtCore import Qt

    from napari_attunet._widgets._worker import Job

    events = []
    start = Job.start

    def start_with_quit_on_first_event(self):
        def quit_on_first(event):
            events.append(event)
            self.worker.quit()

        self.worker.yielded.connect(quit_on_first, Qt.ConnectionType.DirectConnection)
        return start(self)

    monkeypatch.setattr(Job, "start", start_with_quit_on_first_event)
    job = widget.segment()
    qtbot.waitUntil(lambda: not job.running, timeout=120_000)
    assert job.outcome == "cancelled" and result_layers(viewer) == []
    assert len(events) == 1 and events[0].result is None
    assert "cancelled" in widget.last_message


def test_wrong_inputs_show_a_message(viewer, qtbot, messages, tmp_path):
    widget = dock_segment(viewer)
    assert widget.segment() is None  # no image at all
    assert messages[-1][0] == "show_error" and "open a fundus photograph" in messages[-1][1]

    labels = viewer.add_labels(np.zeros((64, 64), np.uint8), name="mask")
    assert widget.segment(labels) is None
    assert "Labels layer" in messages[-1][1]

    empty = viewer.add_image(np.zeros((300, 300), np.uint8), name="black")
    assert widget.segment(empty) is None
    assert "empty" in messages[-1][1]

    tiny = viewer.add_image(np.random.default_rng(0).random((10, 10)), name="tiny")
    assert widget.segment(tiny) is None
    assert "too small" in messages[-1][1]

    widget.image.value = viewer.add_image(np.random.default_rng(0).random((64, 64)), name="noise")
    widget.weights.value = "from file…"
    assert not widget.weights_file.native.isHidden()  # the file chooser appears
    assert widget.segment() is None and "choose a weights file" in messages[-1][1]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a weights file at all")
    widget.weights_file.value = broken
    job = run(qtbot, widget)
    assert job.outcome == "error" and "broken.safetensors" in messages[-1][1]
    assert all(level != "show_info" or "segmented" not in text for level, text in messages)


def test_no_disc_found_gives_empty_labels_to_paint(viewer, qtbot, messages, monkeypatch):
    import napari_attunet._widgets.segment_widget as segment_module
    from napari_attunet import AttentionUNet

    blind = AttentionUNet(base_channels=4, depth=3).eval()
    blind.head.bias.data.fill_(-30.0)  # sees no disc anywhere
    monkeypatch.setattr(segment_module, "get_model", lambda path, device: blind)
    open_sample(viewer)
    widget = dock_segment(viewer)
    job = run(qtbot, widget)
    assert job.outcome == "done"
    assert [layer.name for layer in result_layers(viewer)] == ["retina optic disc", "retina optic cup"]
    assert not viewer.layers["retina optic disc"].data.any()
    assert messages[-1][0] == "show_warning" and "no optic disc found" in messages[-1][1]
    assert widget.results.value == "no optic disc found"
    # the person paints a disc and a cup and measures
    disc = viewer.layers["retina optic disc"]
    cup = viewer.layers["retina optic cup"]
    painted = disc.data.copy()
    painted[600:800, 200:380] = 1
    disc.data = painted
    cup_data = cup.data.copy()
    cup_data[650:750, 250:330] = 1
    cup.data = cup_data
    measured = widget.measure()
    assert measured.vcdr == pytest.approx(100 / 200)


def test_an_implausible_disc_outline_is_kept_and_flagged(viewer, qtbot, messages, monkeypatch):
    import napari_attunet.inference as inference

    warning = "implausible disc shape (300 x 120 px, tall x wide): check the outline"
    monkeypatch.setattr(inference, "disc_shape_warning", lambda measurements: warning)
    open_sample(viewer)
    widget = dock_segment(viewer)
    job = run(qtbot, widget)
    assert job.outcome == "done"
    assert viewer.layers["retina optic disc"].data.any()  # the outline stays, for the person to correct
    level, text = messages[-1]
    assert level == "show_warning" and warning in text and "Correct the labels" in text


def test_grayscale_image_and_stack(viewer, qtbot, messages):
    from skimage import data, transform

    green = transform.resize(data.retina()[..., 1], (480, 480), preserve_range=True).astype(np.uint8)
    gray = viewer.add_image(green, name="gray")
    widget = dock_segment(viewer)
    job = run(qtbot, widget, gray)
    assert job.outcome == "done", widget.last_message
    for layer in result_layers(viewer, "gray"):
        if type(layer).__name__ == "Labels":
            assert layer.data.shape == (480, 480)
        else:  # attention maps: the analysed crop
            assert layer.data.ndim == 2 and layer.data.shape[0] <= 480 and layer.data.shape[1] <= 480

    stack = viewer.add_image(np.stack([green, np.ascontiguousarray(green[:, ::-1])]), name="stack")
    widget.show_attention.value = False
    job = run(qtbot, widget, stack)
    assert job.outcome == "done", widget.last_message
    assert any("stack of 2 images" in text for _, text in messages)
    layers = result_layers(viewer, "stack")
    assert [layer.name for layer in layers] == ["stack optic disc", "stack optic cup"]
    for layer in layers:
        assert layer.data.shape == (2, 480, 480) and layer.ndim == 3
    record = layers[0].metadata["measurements"]
    assert [r["slice"] for r in record] == [[0], [1]]
    measured = widget.measure("stack")
    assert [index for index, _ in measured] == [(0,), (1,)]


def test_layer_data_tuples_work_with_the_viewer_add_methods(viewer):
    """``demo --view`` adds the tuples with ``viewer.add_<type>(data, **kwargs)``: every kwarg must be valid."""
    from test_plugin_layers import fake_result

    from napari_attunet._layers.links import output_layer_names
    from napari_attunet._layers.results import result_layer_data

    viewer.add_image(np.zeros((120, 100, 3), np.uint8), name="eye", rgb=True)
    for data, kwargs, layer_type in result_layer_data(fake_result(), "eye", show_probabilities=True):
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    assert [layer.name for layer in viewer.layers] == ["eye", *output_layer_names("eye", 4, probabilities=True)]
    assert viewer.layers["eye optic disc"].data.dtype == np.uint8


def test_first_look_centres_and_zooms_on_the_disc(viewer, qtbot):
    image = open_sample(viewer)
    widget = dock_segment(viewer)
    job = run(qtbot, widget)
    assert job.outcome == "done", widget.last_message
    disc = viewer.layers["retina optic disc"]
    from napari_attunet._widgets.segment_widget import _camera

    camera = _camera(viewer)  # napari >= 0.9: viewer.scene.camera
    y, x = (int(round(c)) for c in image.world_to_data(camera.center[-2:]))
    assert disc.data[y, x] == 1  # the camera centre lies inside the disc
    rows, cols = np.nonzero(disc.data)
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1  # photo pixels = world units here
    share = extent * camera.zoom / min(viewer.canvas.size)
    assert 0.2 <= share <= 0.6, share
    # Home shows the whole photo again; with the option off, the view stays where it was
    viewer.reset_view()
    whole = camera.zoom
    widget.zoom_to_disc.value = False
    run(qtbot, widget)
    assert camera.zoom == pytest.approx(whole)


def test_renamed_photo_and_results_keep_measure_export_and_finetune_working(viewer, qtbot, messages, tmp_path):
    from napari_attunet._widgets.finetune_widget import FinetuneWidget

    image = open_sample(viewer)
    widget = dock_segment(viewer)
    widget.show_attention.value = False
    assert run(qtbot, widget).outcome == "done", widget.last_message
    _, finetune = viewer.window.add_plugin_dock_widget(PLUGIN, FINETUNE)
    assert isinstance(finetune, FinetuneWidget)
    disc, cup = viewer.layers["retina optic disc"], viewer.layers["retina optic cup"]
    image.name = "patient 7 left eye"
    disc.name = "my disc"
    cup.name = "my cup"
    assert widget.image.value is image and widget.disc_labels.value is disc and widget.cup_labels.value is cup

    edited = cup.data.copy()
    rows = np.flatnonzero(edited.any(axis=1))
    edited[: (rows[0] + rows[-1]) // 2] = 0
    cup.data = edited
    measured = widget.measure()
    assert measured is not None, widget.last_message
    assert measured.cup_area == int(edited.sum()) and disc.metadata["measured_from"] == "edited labels"
    path = widget.export_csv(tmp_path / "m.csv")
    (row,) = list(csv.DictReader(path.open()))
    assert row["image"] == "patient 7 left eye" and row["source"] == "edited labels"

    assert [layer.name for layer in finetune.images.value] == ["patient 7 left eye"]
    samples, description = finetune.layer_samples()
    assert len(samples) == 1 and "patient 7 left eye" in description

    # a second run replaces the renamed layers (same objects, names kept) instead of adding copies
    assert run(qtbot, widget).outcome == "done"
    assert viewer.layers["my disc"] is disc and [layer.name for layer in viewer.layers] == [
        "patient 7 left eye", "my disc", "my cup"]

    # deleting the photo leaves no stale entry in the widgets' menus
    viewer.layers.remove(image)
    assert widget.image.value is None and image not in [c for c in widget.image.choices]
    assert image not in finetune.images.choices and list(finetune.images.value) == []
    assert widget.segment() is None and "open a fundus photograph" in messages[-1][1]


def choose(menu, layer):
    """Choose ``layer`` in a magicgui ComboBox as a person does (Qt's ``activated``)."""
    index = next(i for i in range(menu.native.count()) if menu.native.itemData(i) is layer)
    menu.native.setCurrentIndex(index)
    menu.native.activated.emit(index)


def test_masks_from_elsewhere_pair_by_name_or_in_the_menus(viewer, qtbot, messages):
    from test_plugin_finetune import crop_with_labels

    picture, disc_mask, cup_mask = crop_with_labels()
    photo = viewer.add_image(picture, name="eye", rgb=True)
    widget = dock_segment(viewer)
    _, finetune = viewer.window.add_plugin_dock_widget(PLUGIN, FINETUNE)
    # painted by hand, unnamed: Measure says what is missing
    painted_disc = viewer.add_labels(disc_mask, name="Labels")
    painted_cup = viewer.add_labels(cup_mask, name="Labels [1]")
    widget.image.value = photo
    assert widget.measure() is None and "'eye optic disc'" in messages[-1][1]
    # chosen in the menus: paired, and from then on they follow the photo through renames
    choose(widget.disc_labels, painted_disc)
    choose(widget.cup_labels, painted_cup)
    measured = widget.measure()
    assert measured is not None and measured.vcdr == pytest.approx(
        (np.ptp(np.flatnonzero(cup_mask.any(axis=1))) + 1) / (np.ptp(np.flatnonzero(disc_mask.any(axis=1))) + 1))
    photo.name = "renamed eye"
    samples, _ = finetune.layer_samples([photo])
    assert len(samples) == 1
    # masks named like the widget's output (e.g. opened by the reader) pair by name
    other = viewer.add_image(picture, name="other", rgb=True)
    viewer.add_labels(disc_mask, name="other optic disc")
    viewer.add_labels(cup_mask, name="other optic cup")
    assert widget.measure("other") is not None, widget.last_message
    assert len(finetune.layer_samples([other])[0]) == 1


@pytest.mark.parametrize("transform", [
    {},
    {"scale": (0.5, 0.25), "translate": (10.0, -4.0)},
    {"scale": (2.0, 1.5), "translate": (-7.0, 30.0), "rotate": 30.0},
])
def test_result_layers_lie_on_their_photo_pixel_for_pixel(viewer, qtbot, transform):
    """A pixel of the disc in the label and map layers is the same pixel of the photo."""
    from test_plugin_layers import CROP, fake_result

    result = fake_result()
    photo = viewer.add_image(np.random.default_rng(0).integers(0, 255, (120, 100, 3), np.uint8), name="eye",
                             rgb=True, **transform)
    widget = dock_segment(viewer)
    widget.show_result(photo, result)
    qtbot.waitUntil(lambda: not widget.busy and len(result_layers(viewer, "eye")) == 6, timeout=60_000)
    layers = result_layers(viewer, "eye")
    maps = [layer for layer in layers if type(layer).__name__ == "Image"]
    disc = viewer.layers["eye optic disc"]
    assert maps and all(layer.data.shape == (CROP[2] - CROP[0], CROP[3] - CROP[1]) for layer in maps)
    ys, xs = np.nonzero(result.disc)
    for y, x in list(zip(ys, xs))[::97]:
        world = photo.data_to_world((y, x))
        np.testing.assert_allclose(disc.world_to_data(world), (y, x), atol=1e-6)
        assert disc.data[y, x] == 1
        for k, layer in enumerate(maps):
            local = layer.world_to_data(world)
            np.testing.assert_allclose(local, (y - CROP[0], x - CROP[1]), atol=1e-6)
            assert layer.data[int(round(local[0])), int(round(local[1]))] == result.attention[k][y, x]


def assert_texts_fit(*areas):
    """Each status or result text is shown whole in its widget: wrapped within its width, not cut at the bottom."""
    from qtpy.QtCore import QRect, Qt
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    for area in areas:
        native = area.native
        assert native.isVisible() and native.wordWrap()
        room = native.contentsRect()
        shown = native.fontMetrics().boundingRect(QRect(0, 0, room.width(), 1 << 20), Qt.TextFlag.TextWordWrap,
                                                  native.text())
        assert shown.width() <= room.width(), f"{area.label} is wider than its widget: {area.value!r}"
        assert shown.height() <= room.height(), (f"{area.label} is cut off ({room.height()} of {shown.height()} px "
                                                 f"shown): {area.value!r}")


def test_status_and_result_lines_are_never_cut_off(make_napari_viewer, qtbot, tmp_path):
    """In a docked, shown window: the low-confidence advice, a stack's result, long paths and names fit."""
    from skimage import data, transform

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1600, 1000)
    open_sample(viewer)
    widget = dock_segment(viewer)
    assert run(qtbot, widget).outcome == "done", widget.last_message
    assert len(widget.status.value) > 60  # a sentence: segmented in ..., or the low-confidence advice
    assert_texts_fit(widget.status, widget.results)

    long_name = "patient_000123_right_eye_2026-11-30_fundus_camera_export_final"
    green = transform.resize(data.retina()[..., 1], (256, 256), preserve_range=True).astype(np.uint8)
    stack = viewer.add_image(np.stack([green, np.ascontiguousarray(green[:, ::-1])]), name=long_name)
    widget.show_attention.value = False
    assert run(qtbot, widget, stack).outcome == "done", widget.last_message
    assert long_name in widget.status.value and "slices" in widget.results.value
    assert_texts_fit(widget.status, widget.results)

    deep = tmp_path / "a_folder_with_a_rather_long_name" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    assert widget.export_csv(deep / "measurements_of_the_whole_cohort.csv") is not None, widget.last_message
    assert str(deep) in widget.status.value
    assert_texts_fit(widget.status, widget.results)

    from qtpy.QtWidgets import QDockWidget

    _, finetune = viewer.window.add_plugin_dock_widget(PLUGIN, FINETUNE, tabify=True)
    dock = finetune.native
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    dock.raise_()  # its tab in front
    finetune.images.value = []
    assert finetune.train() is None
    assert finetune.status.value
    assert_texts_fit(finetune.status)
