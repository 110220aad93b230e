"""The fine-tune widget asks before its training replaces an existing weights file."""

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from test_plugin_finetune import add_pair, dock, small_settings  # noqa: E402


@pytest.mark.parametrize("answer", [False, True])
def test_finetune_asks_before_replacing_an_existing_file(viewer, qtbot, tmp_path, messages, answer):
    from napari_attunet.weights import read_metadata

    layers = [add_pair(viewer, "left"), add_pair(viewer, "right", flip=True)]
    widget = dock(viewer)
    widget.images.value = layers
    out = tmp_path / "existing.safetensors"
    out.write_bytes(b"weights the user keeps")
    small_settings(widget, out, epochs=1)
    asked = []
    widget.confirm_replace = lambda path: asked.append(path) or answer
    job = widget.train()
    assert asked == [out]
    if not answer:
        assert job is None and out.read_bytes() == b"weights the user keeps"
        assert messages[-1] == ("show_warning", "existing.safetensors was kept; choose another file name to save to")
        return
    assert job is not None, widget.last_message
    qtbot.waitUntil(lambda: not job.running, timeout=300_000)
    assert job.outcome == "done", widget.last_message
    assert read_metadata(out)["training"]["epochs_trained"] == 1
