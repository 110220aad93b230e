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
    assert 0 < config.keep_start < 1  # blended with the starting network
    assert (config.val_fraction > 0) == (images >= MIN_VALIDATION_IMAGES)
    assert TrainConfig.fine_tuning(images, epochs=3).epochs == 3


def test_blending_with_the_start_saves_that_mix_of_the_start_and_the_tuned_network(tmp_path, samples):
    base = tmp_path / "base.safetensors"
    train(samples, base, tiny_config(epochs=1))
    plain, mixed = tmp_path / "plain.safetensors", tmp_path / "mixed.safetensors"
    train(samples, plain, tiny_config(epochs=2, init_weights=str(base)))
    train(samples, mixed, tiny_config(epochs=2, init_weights=str(base), keep_start=0.25))
    start, tuned = load_model(base, device="cpu").state_dict(), load_model(plain, device="cpu").state_dict()
    saved = load_model(mixed, device="cpu").state_dict()
    for name, value in saved.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.25 * start[name] + 0.75 * tuned[name], msg=name)
    assert not torch.equal(saved["head.weight"], tuned["head.weight"])
    assert read_metadata(mixed)["training"]["config"]["keep_start"] == 0.25


def test_cup_distillation_keeps_the_cup_output_closer_to_the_starting_network(tmp_path, samples):
    base = tmp_path / "base.safetensors"
    train(samples, base, tiny_config(epochs=1))
    outputs = {}
    for weight in (0.0, 20.0):
        out = tmp_path / f"tuned_{weight}.safetensors"
        train(samples, out, tiny_config(epochs=4, init_weights=str(base), cup_distillation=weight))
        outputs[weight] = out
    photo = torch.from_numpy(samples[0].image).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(photo, size=(64, 64))

    def cup(path):
        with torch.no_grad():
            return torch.sigmoid(load_model(path, device="cpu")(x).logits[:, 1])

    start = cup(base)
    assert (cup(outputs[20.0]) - start).abs().mean() < (cup(outputs[0.0]) - start).abs().mean()


def test_anchors_to_the_start_need_a_starting_network_and_sensible_weights(tmp_path, samples):
    for bad, message in (({"keep_start": 0.5}, "starting network"), ({"cup_distillation": 1.0}, "starting network"),
                         ({"keep_start": 1.0, "init_weights": "default"}, "keep_start"),
                         ({"cup_distillation": -1.0, "init_weights": "default"}, "cup_distillation")):
        with pytest.raises(ValueError, match=message):
            train(samples, tmp_path / "x.safetensors", tiny_config(**bad))
