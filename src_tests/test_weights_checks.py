"""Hostile and damaged weights files: refused with the file and the field named, before anything is built."""

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from napari_attunet import AttentionUNet, WeightsError, load_model, save_weights
from napari_attunet.calibration import store_thresholds
from napari_attunet.model import WeightsInfo
from napari_attunet.weights import WeightsWarning, default_weights_path, read_metadata, tensors_sha256


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "net.safetensors"
    save_weights(AttentionUNet(base_channels=4, depth=3), path,
                 {"training": {"data": "unit test"}, "preprocessing": {"coarse_size": 256, "context": 2.2}})
    return path


def split(data: bytes) -> tuple[dict, bytes]:
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + length]), data[8 + length:]


def join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


def with_document(good_file, path, change) -> None:
    """A copy of ``good_file`` whose napari-attunet document went through ``change``."""
    header, body = split(good_file.read_bytes())
    document = json.loads(header["__metadata__"]["napari_attunet"])
    change(document)
    header["__metadata__"]["napari_attunet"] = json.dumps(document)
    path.write_bytes(join(header, body))


def setter(dotted: str, value):
    def change(document):
        *parents, last = dotted.split(".")
        target = document
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return change


HOSTILE = [
    ("format", "1"),
    ("format", 2),
    ("format", True),
    ("config", "abc"),
    ("config.base_channels", 1_000_000),
    ("config.base_channels", 0),
    ("config.base_channels", 4.0),
    ("config.depth", 40),
    ("config.in_channels", 1),
    ("config.out_channels", 5),
    ("config.norm", "layer"),
    ("config.attention", "yes"),
    ("config.extra_layers", 3),
    ("classes", ["cup", "disc"]),
    ("preprocessing", "abc"),
    ("preprocessing.coarse_size", 0),
    ("preprocessing.fine_size", 100_000),
    ("preprocessing.context", float("nan")),
    ("preprocessing.context", -2.2),
    ("preprocessing.gamma", 1.0),
    ("thresholds", [0.5, 0.5]),
    ("thresholds.cup", 1.5),
    ("thresholds.disc", None),
    ("training", "abc"),
    ("training.epochs_trained", -1),
    ("training.train_images", "a,b"),
    ("metrics", 3),
    ("fine_tuned_from", "parent"),
    ("package_version", 1),
    ("tensors_sha256", "abc"),
]


@pytest.mark.parametrize("field, value", HOSTILE, ids=[f"{f}={v!r}" for f, v in HOSTILE])
def test_metadata_outside_the_schema_is_refused_naming_file_and_field(good_file, tmp_path, field, value):
    path = tmp_path / "hostile.safetensors"
    with_document(good_file, path, setter(field, value))
    for read in (lambda: load_model(path, device="cpu"), lambda: read_metadata(path)):
        with pytest.raises(WeightsError) as info:
            read()
        message = str(info.value)
        assert "hostile.safetensors" in message and repr(field) in message, message


def test_missing_config_and_a_non_object_document_are_refused(good_file, tmp_path):
    path = tmp_path / "hostile.safetensors"
    with_document(good_file, path, lambda document: document.pop("config"))
    with pytest.raises(WeightsError, match="'config' is missing"):
        load_model(path, device="cpu")
    header, body = split(good_file.read_bytes())
    header["__metadata__"]["napari_attunet"] = json.dumps([1, 2])
    path.write_bytes(join(header, body))
    with pytest.raises(WeightsError, match="must be a JSON object"):
        load_model(path, device="cpu")


def test_a_non_object_safetensors_metadata_is_refused(good_file, tmp_path):
    header, body = split(good_file.read_bytes())
    header["__metadata__"] = "oops"
    path = tmp_path / "oops.safetensors"
    path.write_bytes(join(header, body))
    with pytest.raises(WeightsError, match="oops.safetensors.*__metadata__"):
        load_model(path, device="cpu")


def test_a_huge_network_claimed_over_small_tensors_is_refused_before_allocating(good_file, tmp_path):
    path = tmp_path / "huge.safetensors"
    with_document(good_file, path, setter("config.base_channels", 128))  # within bounds, 1000x the tensors
    with_document(path, path, setter("config.depth", 7))
    with pytest.raises(WeightsError, match="huge.safetensors: tensors do not match"):
        load_model(path, device="cpu")


def test_every_schema_field_is_checked_when_saving_too(tmp_path):
    model = AttentionUNet(base_channels=4, depth=3)
    with pytest.raises(ValueError, match="preprocessing.coarse_size"):
        save_weights(model, tmp_path / "w.safetensors", {"preprocessing": {"coarse_size": 0}})
    assert not list(tmp_path.iterdir())


def test_overwritten_tensor_values_are_refused_by_the_checksum(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    rng = np.random.default_rng(0)
    # Small finite float32 values (like weights), so only the checksum can tell.
    noise = rng.normal(0, 0.01, (len(data) - header_end) // 4).astype(np.float32).tobytes()
    data[header_end:header_end + len(noise)] = noise
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged.safetensors.*checksum"):
        load_model(path, device="cpu")


def test_non_finite_tensors_are_refused_even_with_a_matching_checksum(tmp_path):
    model = AttentionUNet(base_channels=4, depth=3)
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_weights(model, path)  # the checksum is of the NaN tensors, so it matches
    with pytest.raises(WeightsError, match="nan.safetensors: tensor 'head.weight' holds NaN"):
        load_model(path, device="cpu")


def test_a_file_without_checksum_loads_with_a_note(good_file, tmp_path):
    path = tmp_path / "old.safetensors"
    with_document(good_file, path, lambda document: document.pop("tensors_sha256"))
    with pytest.warns(WeightsWarning, match="old.safetensors has no tensor checksum"):
        model = load_model(path, device="cpu")
    assert model.weights_info.notes and "checksum" in model.weights_info.notes[0]


def test_storing_thresholds_keeps_the_checksum_valid(good_file, tmp_path):
    path = tmp_path / "calibrated.safetensors"
    path.write_bytes(good_file.read_bytes())
    model = load_model(path, device="cpu")
    store_thresholds(model, path, 0.5, 0.3, "unit test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_model(path, device="cpu")
    assert again.weights_info.notes == [] and read_metadata(path)["thresholds"]["cup"] == 0.3
    assert read_metadata(path)["tensors_sha256"] == tensors_sha256(load_file(str(path)))


def test_the_shipped_weights_carry_a_verified_checksum():
    path = default_weights_path()
    assert read_metadata(path)["tensors_sha256"] == tensors_sha256(load_file(str(path)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(path, device="cpu").weights_info.notes == []


def test_the_loaded_model_declares_where_its_weights_came_from(good_file):
    bare = AttentionUNet(base_channels=4, depth=3)
    assert bare.weights_info == WeightsInfo(name="in-memory model", sha256="", metadata={}, notes=[])
    loaded = load_model(good_file, device="cpu")
    info = loaded.weights_info
    assert info.name == "net.safetensors" and len(info.sha256) == 64
    assert info.metadata["training"]["data"] == "unit test"
    assert "config" not in info.metadata and "format" not in info.metadata
