"""Choosing the cup threshold on annotated images (napari_attunet.calibration, `napari-attunet calibrate`)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from napari_attunet.calibration import calibrate, choose_cup_threshold
from napari_attunet.cli import main
from napari_attunet.datasets import samples_from_arrays
from napari_attunet.weights import read_metadata


def summary(**by_threshold):
    return {float(t.replace("t", "0.")): {"oc": oc, "vcdr_mae": mae} for t, (oc, mae) in by_threshold.items()}


def test_the_rule_trades_at_most_a_little_overlap_and_prefers_the_reference_on_ties():
    # 0.25 has the best ratio but costs 0.01 Dice: not allowed; 0.3 costs 0.004: allowed.
    assert choose_cup_threshold(summary(t25=(0.90, 0.030), t3=(0.906, 0.035), t5=(0.91, 0.050))) == 0.3
    # Equal errors: the one nearer 0.5.
    assert choose_cup_threshold(summary(t3=(0.91, 0.04), t4=(0.91, 0.04), t5=(0.91, 0.05))) == 0.4
    with pytest.raises(ValueError, match="reference"):
        choose_cup_threshold(summary(t3=(0.91, 0.04)))


@pytest.fixture(scope="module")
def annotated(retina, default_model):
    """Crops of the sample photo annotated with the network's own disc and a cup drawn at 0.35."""
    from napari_attunet import segment

    crops = [retina[450:850, 40:440], retina[400:900, 0:500]]
    samples = []
    for crop in crops:
        result = segment(crop, default_model, device="cpu", attention=False, cup_threshold=0.35)
        samples.append((crop, result.disc, result.cup))
    return samples_from_arrays(samples)


def test_calibration_finds_the_threshold_the_cups_were_drawn_at(annotated, default_model):
    report = calibrate(annotated, default_model, torch.device("cpu"))
    assert report["summary"][0.35]["vcdr_mae"] == 0 and report["summary"][0.35]["oc"] == 1.0
    chosen = report["cup_threshold"]
    assert report["summary"][chosen]["vcdr_mae"] == 0
    assert 0.35 <= chosen <= 0.5  # ties go towards 0.5, never away from the drawn threshold
    assert report["summary"][0.5]["oc"] < 1.0  # the reference really draws another cup
    with pytest.raises(ValueError, match="no annotated images"):
        calibrate([], default_model, torch.device("cpu"))


def test_calibrate_command_stores_the_threshold_that_segment_then_uses(tmp_path, annotated, capsys):
    from napari_attunet import load_model
    from napari_attunet.weights import default_weights_path

    folder = tmp_path / "data"
    folder.mkdir()
    for sample in annotated:
        Image.fromarray(sample.image).save(folder / f"{sample.name}.png")
        Image.fromarray(sample.disc.astype(np.uint8) * 255).save(folder / f"{sample.name}_disc.png")
        Image.fromarray(sample.cup.astype(np.uint8) * 255).save(folder / f"{sample.name}_cup.png")
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(default_weights_path().read_bytes())

    assert main(["calibrate", "--data", str(folder), "--apply"]) == 2
    assert "--apply needs --weights" in capsys.readouterr().err

    assert main(["calibrate", "--data", str(folder), "--weights", str(weights), "--json", "--apply"]) == 0
    report = json.loads(capsys.readouterr().out)
    stored = read_metadata(weights)["thresholds"]
    assert stored["cup"] == report["cup_threshold"] and "calibrate" in stored["source"]
    assert main(["evaluate", "--data", str(folder), "--weights", str(weights), "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["provenance"]["cup_threshold"] == stored["cup"]
    chosen_scores = report["summary"][str(report["cup_threshold"])]  # JSON keys: "0.35"
    assert evaluation["summary"]["dice_oc"] == pytest.approx(chosen_scores["oc"])
    assert not list(tmp_path.glob("*.tmp"))
    # The tensors are untouched.
    before, after = load_model(None, device="cpu").state_dict(), load_model(weights, device="cpu").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_images_where_no_disc_is_found_are_reported(default_model):
    blank = np.full((300, 300, 3), 90, np.uint8)
    blank[::7] = 100  # not uniform, but nothing disc-like
    disc = np.zeros((300, 300), bool)
    disc[120:180, 120:180] = True
    (sample,) = samples_from_arrays([(blank, disc, disc & False)])
    with pytest.raises(ValueError, match="no optic disc in any"):
        calibrate([sample], default_model, torch.device("cpu"))
