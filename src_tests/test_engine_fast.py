"""The engine and the command line end to end with a tiny seeded network (the fast tier).

The network's masks mean nothing here; these tests hold the contracts users rely on whatever
the weights: masks at the photo's size with the cup inside the disc, one attention map per
gate, measurements that match the masks, batches that equal single images, and a command
line that writes every file, records provenance and reports failures in its exit code.
"""

import csv
import hashlib
import json
import math

import numpy as np
import pytest
from conftest import synthetic_fundus
from PIL import Image

from napari_attunet import measure, segment
from napari_attunet.cli import main


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return synthetic_fundus(size=300, disc_radius=45, cup_radius=20, seed=3)[0]


def test_masks_maps_and_measurements_follow_the_photo(photo, tiny_model):
    result = segment(photo, tiny_model, device="cpu")
    assert result.disc.shape == result.cup.shape == photo.shape[:2]
    assert result.disc.dtype == result.cup.dtype == bool
    assert not (result.cup & ~result.disc).any()
    assert len(result.attention) == tiny_model.num_gates
    for gate in result.attention:
        assert gate.shape == photo.shape[:2] and gate.dtype == np.float32
        assert 0.0 <= gate.min() and gate.max() <= 1.0
    expected = measure(result.disc, result.cup)
    assert result.disc_area == expected.disc_area and result.cup_area == expected.cup_area
    assert (math.isnan(result.vcdr) and math.isnan(expected.vcdr)) or result.vcdr == pytest.approx(expected.vcdr)
    assert result.provenance["package"] == "napari-attunet"
    assert result.provenance["device"] == "cpu"


def test_the_same_photo_gives_the_same_result(photo, tiny_model):
    first, second = segment(photo, tiny_model, device="cpu"), segment(photo, tiny_model, device="cpu")
    assert np.array_equal(first.disc, second.disc) and np.array_equal(first.cup, second.cup)


def test_a_batch_equals_the_images_one_by_one(photo, tiny_model):
    photos = [photo, np.ascontiguousarray(photo[:, ::-1]), photo[20:, 10:]]
    batched = segment(photos, tiny_model, device="cpu", batch_size=2, attention=False)
    assert len(batched) == 3
    for image, result in zip(photos, batched):
        alone = segment(image, tiny_model, device="cpu", attention=False)
        assert result.disc.shape == image.shape[:2] and result.attention == []
        assert np.array_equal(result.disc, alone.disc) and np.array_equal(result.cup, alone.cup)


def test_bad_input_is_a_clear_error_before_any_work(photo, tiny_model):
    with pytest.raises(ValueError, match="image 1"):
        segment([photo, np.zeros((4,))], tiny_model, device="cpu")


@pytest.fixture
def photos(tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "left.png")
    Image.fromarray(photo[:, ::-1]).save(folder / "right.jpg", quality=95)
    return folder


def test_segment_command_writes_masks_maps_and_a_csv(tmp_path, photos, tiny_weights):
    out = tmp_path / "out"
    code = main(["segment", str(photos), "--out", str(out), "--weights", str(tiny_weights), "--device", "cpu",
                 "--attention", "--overlay"])
    assert code == 0
    for stem in ("left", "right"):
        for kind in ("disc", "cup", "overlay"):
            assert Image.open(out / f"{stem}_{kind}.png").size == (300, 300)
        assert len(list(out.glob(f"{stem}_attention_*.png"))) == 2  # the tiny network's gates
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [row["image"] for row in rows] == ["left.png", "right.jpg"]
    digest = hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    assert all(row["weights_sha256"] == digest and row["device"] == "cpu" for row in rows)


def test_segment_command_exit_codes(tmp_path, photos, tiny_weights):
    weights = ["--weights", str(tiny_weights), "--device", "cpu"]
    (photos / "broken.png").write_bytes(b"not an image")
    assert main(["segment", str(photos), "--out", str(tmp_path / "some"), *weights]) == 1  # some images failed
    rows = {row["image"]: row["status"] for row in csv.DictReader(open(tmp_path / "some" / "results.csv"))}
    assert rows["broken.png"].startswith("error") and not rows["left.png"].startswith("error")
    assert main(["segment", str(tmp_path / "missing.png"), "--out", str(tmp_path / "none"), *weights]) == 2


def test_evaluate_scores_masks_drawn_by_the_same_network_as_perfect(tmp_path, photo, tiny_model, tiny_weights,
                                                                     capsys, monkeypatch):
    import napari_attunet.inference

    # The untrained network's outlines are faint: keep them rather than discard them as "no disc".
    monkeypatch.setattr(napari_attunet.inference, "NO_DISC_BELOW", 0.0)
    result = segment(photo, tiny_model, device="cpu", attention=False)
    assert result.disc_found and result.cup.any(), "the seeded tiny network should outline something"
    folder = tmp_path / "annotated"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "eye.png")
    Image.fromarray(result.disc.astype(np.uint8) * 255).save(folder / "eye_disc.png")
    Image.fromarray(result.cup.astype(np.uint8) * 255).save(folder / "eye_cup.png")
    assert main(["evaluate", "--data", str(folder), "--weights", str(tiny_weights), "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["images"] == 1
    assert report["summary"]["dice_od"] == pytest.approx(1.0) and report["summary"]["dice_oc"] == pytest.approx(1.0)
