import numpy as np
import pytest
import torch
from conftest import synthetic_fundus

from napari_attunet import load_model
from napari_attunet.datasets import samples_from_arrays
from napari_attunet.progress import Cancelled
from napari_attunet.training import TrainConfig, iter_train, train
from napari_attunet.weights import read_metadata


def tiny_config(**changes):
    settings = dict(epochs=2, batch_size=2, input_size=64, base_channels=4, depth=3, val_fraction=0.0,
                    val_every=1, device="cpu", warmup_epochs=1)
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def samples():
    return samples_from_arrays([synthetic_fundus(seed=i)[0:3] for i in range(4)])


def test_training_writes_weights_that_load_and_describe_the_run(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    events = list(iter_train(samples, out, tiny_config(data_description="synthetic")))
    assert events[-1].stage == "done" and events[-1].result == out
    train_events = [e for e in events if e.stage == "train"]
    assert [e.step for e in train_events] == list(range(1, 5))
    assert all(np.isfinite(e.metrics["loss"]) for e in train_events)
    model = load_model(out, device="cpu")
    meta = read_metadata(out)
    assert meta["training"]["data"] == "synthetic"
    assert meta["training"]["epochs_trained"] == 2
    assert model.config["base_channels"] == 4


def test_validation_split_reports_dice_and_keeps_the_best(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    events = list(iter_train(samples, out, tiny_config(val_fraction=0.25)))
    validations = [e for e in events if e.stage == "validate"]
    assert all("dice_od" in e.metrics and "dice_oc" in e.metrics for e in validations)
    assert len(read_metadata(out)["training"]["validation_images"]) == 1


def test_cancel_stops_at_the_next_step_and_leaves_no_partial_file(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    steps = []
    with pytest.raises(Cancelled):
        train(samples, out, tiny_config(epochs=5), progress=steps.append, cancel=lambda: len(steps) >= 3)
    assert len(steps) == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_continues_from_the_last_epoch(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    generator = iter_train(samples, out, tiny_config(epochs=3))
    for event in generator:
        if event.stage == "validate" and event.metrics["epoch"] == 2:
            break
    generator.close()  # as if killed after epoch 2
    events = list(iter_train(samples, out, tiny_config(epochs=3), resume=True))
    epochs = sorted({e.metrics["epoch"] for e in events if e.stage == "train"})
    assert epochs == [3]
    assert read_metadata(out)["training"]["epochs_trained"] == 3


def test_fine_tuning_from_a_file_with_a_frozen_encoder_changes_only_the_decoder(tmp_path, samples):
    base = tmp_path / "base.safetensors"
    train(samples, base, tiny_config(epochs=1))
    tuned = tmp_path / "tuned.safetensors"
    train(samples, tuned, tiny_config(epochs=1, init_weights=str(base), freeze_encoder=True))
    before, after = load_model(base, device="cpu"), load_model(tuned, device="cpu")
    for (name, a), b in zip(before.encoders.state_dict().items(), after.encoders.state_dict().values()):
        assert torch.equal(a, b), name
    changed = [not torch.equal(a, b) for a, b in zip(before.decoders.parameters(), after.decoders.parameters())]
    assert any(changed)
    assert read_metadata(tuned)["fine_tuned_from"]["weights"] == "base.safetensors"


def test_trained_weights_do_not_inherit_calibrated_thresholds(tmp_path, samples):
    from napari_attunet.weights import save_weights

    base = tmp_path / "base.safetensors"
    train(samples, base, tiny_config(epochs=1))
    save_weights(load_model(base, device="cpu"), base, {"thresholds": {"disc": 0.5, "cup": 0.25, "source": "x"}})
    tuned = tmp_path / "tuned.safetensors"
    train(samples, tuned, tiny_config(epochs=1, init_weights=str(base)))
    thresholds = read_metadata(tuned)["thresholds"]
    assert (thresholds["disc"], thresholds["cup"]) == (0.5, 0.5)
    assert "not calibrated" in thresholds["source"]


def test_bad_settings_and_empty_discs_are_rejected(tmp_path, samples):
    with pytest.raises(ValueError, match="epochs"):
        train(samples, tmp_path / "x.safetensors", tiny_config(epochs=0))
    image, disc, cup = synthetic_fundus()
    empty = samples_from_arrays([(image, np.zeros_like(disc), cup)])
    with pytest.raises(ValueError, match="empty optic disc"):
        train(empty, tmp_path / "x.safetensors", tiny_config())


@pytest.mark.parametrize("images", [5, 10, 20, 40])
def test_fine_tuning_recipe_has_a_fixed_step_budget_and_validates_only_with_enough_images(images):
    from napari_attunet.training import FINE_TUNE_STEPS, MIN_VALIDATION_IMAGES

    config = TrainConfig.fine_tuning(images)
    steps_per_epoch = -(-images // config.batch_size)
    assert FINE_TUNE_STEPS <= config.epochs * steps_per_epoch < FINE_TUNE_STEPS + steps_per_epoch
    assert config.learning_rate < TrainConfig().learning_rate
    assert config.init_weights == "default"
    assert (config.val_fraction > 0) == (images >= MIN_VALIDATION_IMAGES)
    assert TrainConfig.fine_tuning(images, epochs=3).epochs == 3
