"""`napari-attunet train --init`: adapting trained weights uses the few-shot recipe unless told otherwise."""

import pytest
import torch
from conftest import synthetic_fundus

from napari_attunet.cli import main
from napari_attunet.image_files import mask_to_uint8, write_image
from napari_attunet.training import TrainConfig
from napari_attunet.weights import read_metadata


@pytest.fixture
def annotated(tmp_path):
    folder = tmp_path / "annotated"
    folder.mkdir()
    for index in range(3):
        image, disc, cup = synthetic_fundus(size=128, disc_radius=24, cup_radius=10, seed=index)[0:3]
        write_image(folder / f"eye{index}.png", image)
        write_image(folder / f"eye{index}_disc.png", mask_to_uint8(disc))
        write_image(folder / f"eye{index}_cup.png", mask_to_uint8(cup))
    return folder


def test_fine_tuning_from_trained_weights_uses_the_recipe(tmp_path, annotated, capsys):
    out = tmp_path / "adapted.safetensors"
    assert main(["train", "--data", str(annotated), "--out", str(out), "--init", "default", "--epochs", "1",
                 "--input-size", "64", "--threads", "1"]) == 0
    # three cups of one size: the summary, and the warning that the tuned network learns their size
    captured = capsys.readouterr()
    err, printed = captured.err, captured.out
    assert "annotated cups: vCDR" in err and "(3 photos)" in err
    assert "warning: the annotated cups are alike in size" in err
    # without validation photos (the recipe below 30 photos) the last epoch's network is saved, and said so
    assert "no validation photos: the network of the last epoch (1) was saved" in printed
    config = read_metadata(out)["training"]["config"]
    recipe = TrainConfig.fine_tuning(3)
    assert config["epochs"] == 1  # what the user chose wins
    assert config["learning_rate"] == recipe.learning_rate < TrainConfig().learning_rate
    assert config["val_fraction"] == 0.0  # three photos: no validation split, the last network is kept
    assert (config["keep_start"], config["cup_distillation"]) == (recipe.keep_start, recipe.cup_distillation)


def test_anchors_to_the_starting_network_can_be_chosen_and_need_one(tmp_path, annotated, capsys):
    out = tmp_path / "adapted.safetensors"
    assert main(["train", "--data", str(annotated), "--out", str(out), "--init", "default", "--epochs", "1",
                 "--input-size", "64", "--threads", "1", "--keep-start", "0.3", "--cup-distillation", "2"]) == 0
    config = read_metadata(out)["training"]["config"]
    assert (config["keep_start"], config["cup_distillation"]) == (0.3, 2.0)
    scratch = tmp_path / "scratch.safetensors"
    assert main(["train", "--data", str(annotated), "--out", str(scratch), "--epochs", "1", "--input-size", "64",
                 "--keep-start", "0.3"]) != 0
    assert "starting network" in capsys.readouterr().err
    assert not scratch.exists()


def test_training_from_scratch_keeps_its_own_defaults(tmp_path, annotated):
    out = tmp_path / "scratch.safetensors"
    assert main(["train", "--data", str(annotated), "--out", str(out), "--epochs", "1", "--input-size", "64",
                 "--base-channels", "4", "--depth", "3", "--val-fraction", "0", "--threads", "1"]) == 0
    config = read_metadata(out)["training"]["config"]
    assert config["learning_rate"] == TrainConfig().learning_rate


def test_blend_mixes_a_fine_tuned_network_with_its_start_and_refuses_unrelated_ones(tmp_path, annotated, capsys):
    from napari_attunet import load_model

    tuned = tmp_path / "adapted.safetensors"
    assert main(["train", "--data", str(annotated), "--out", str(tuned), "--init", "default", "--epochs", "1",
                 "--input-size", "64", "--threads", "1", "--keep-start", "0"]) == 0
    blend = tmp_path / "blend.safetensors"
    assert main(["blend", str(tuned), "--keep-start", "0.5", "--out", str(blend)]) == 0
    start, own = load_model(device="cpu").state_dict(), load_model(tuned, device="cpu").state_dict()
    mixed = load_model(blend, device="cpu").state_dict()
    for name, value in start.items():
        if value.is_floating_point():
            torch.testing.assert_close(mixed[name], 0.5 * value + 0.5 * own[name], msg=name)
    metadata = read_metadata(blend)
    assert metadata["blended_with_start"]["keep_start"] == 0.5
    assert "not calibrated" in metadata["thresholds"]["source"]

    assert main(["blend", str(tuned), "--keep-start", "0.5", "--out", str(blend)]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    scratch = tmp_path / "scratch.safetensors"
    assert main(["train", "--data", str(annotated), "--out", str(scratch), "--epochs", "1", "--input-size", "64",
                 "--val-fraction", "0", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["blend", str(scratch), "--keep-start", "0.5", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "not fine-tuned from" in capsys.readouterr().err
    assert main(["blend", str(tuned), "--keep-start", "1", "--out", str(tmp_path / "y.safetensors")]) == 2
    assert "keep_start" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()
