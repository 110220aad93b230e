import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from napari_attunet import AttentionUNet, WeightsError, load_model, save_weights
from napari_attunet.weights import default_weights_path, read_metadata


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return AttentionUNet(base_channels=4, depth=3)


def test_round_trip_keeps_weights_config_and_metadata(tmp_path, small_model):
    path = tmp_path / "net.safetensors"
    digest = save_weights(small_model, path, {"training": {"data": "unit test"}})
    loaded = load_model(path, device="cpu")
    assert loaded.config == small_model.config
    for (name, a), b in zip(small_model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.weights_info.sha256 == digest
    meta = read_metadata(path)
    assert meta["training"]["data"] == "unit test"
    assert meta["classes"] == ["optic disc", "optic cup"]
    assert not loaded.training


def test_default_weights_describe_themselves():
    meta = read_metadata(default_weights_path())
    assert meta["config"]["attention"] is True
    assert meta["preprocessing"]["fine_size"] > 0
    assert "Drishti" in meta["training"]["data"]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match="not found") as info:
        load_model(tmp_path / "nope.safetensors", device="cpu")
    assert "nope.safetensors" in str(info.value)


def test_truncated_file(tmp_path, small_model):
    path = tmp_path / "net.safetensors"
    save_weights(small_model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated|damaged"):
        load_model(path, device="cpu")
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError, match="truncated"):
        load_model(path, device="cpu")


def test_corrupt_header(tmp_path):
    path = tmp_path / "net.safetensors"
    path.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}" + b"\0" * 64)
    with pytest.raises(WeightsError, match="corrupt"):
        load_model(path, device="cpu")


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    payload = _Payload()
    payload.target = str(marker)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(WeightsError, match="pickle"):
        load_model(path, device="cpu")
    torch_file = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, torch_file)
    with pytest.raises(WeightsError, match="pickle"):
        load_model(torch_file, device="cpu")
    assert not marker.exists()


def test_foreign_safetensors_and_mismatched_tensors(tmp_path, small_model):
    foreign = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(foreign))
    with pytest.raises(WeightsError, match="not napari-attunet weights"):
        load_model(foreign, device="cpu")

    wrong = tmp_path / "wrong.safetensors"
    document = {"format": 1, "config": {**small_model.config, "base_channels": 8}}
    tensors = {k: v.contiguous() for k, v in small_model.state_dict().items()}
    save_file(tensors, str(wrong), metadata={"napari_attunet": json.dumps(document)})
    with pytest.raises(WeightsError, match="do not match"):
        load_model(wrong, device="cpu")


def test_unavailable_device_is_a_clear_error(tmp_path, small_model):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    path = tmp_path / "net.safetensors"
    save_weights(small_model, path)
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(path, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        load_model(path, device="gpu0")


def test_thresholds_travel_with_the_weights_and_bad_ones_are_refused(tmp_path, small_model):
    from napari_attunet.inference import Segmenter

    path = tmp_path / "net.safetensors"
    save_weights(small_model, path, {"thresholds": {"disc": 0.45, "cup": 0.3, "source": "unit test"}})
    loaded = load_model(path, device="cpu")
    segmenter = Segmenter(loaded, torch.device("cpu"))
    assert (segmenter.disc_threshold, segmenter.cup_threshold) == (0.45, 0.3)
    assert segmenter.provenance["cup_threshold"] == 0.3
    explicit = Segmenter(loaded, torch.device("cpu"), cup_threshold=0.6)
    assert (explicit.disc_threshold, explicit.cup_threshold) == (0.45, 0.6)

    bare = tmp_path / "bare.safetensors"
    save_weights(small_model, bare)
    assert Segmenter(load_model(bare, device="cpu"), torch.device("cpu")).cup_threshold == 0.5

    for bad in ({"cup": 1.5}, {"disc": "high"}, [0.5, 0.5]):
        with pytest.raises(ValueError, match="threshold"):  # never written ...
            save_weights(small_model, path, {"thresholds": bad})
        document = {**read_metadata(bare), "thresholds": bad}  # ... but a file may come from anywhere
        save_file(small_model.state_dict(), str(path), metadata={"napari_attunet": json.dumps(document)})
        with pytest.raises(WeightsError, match="threshold") as info:
            load_model(path, device="cpu")
        assert "net.safetensors" in str(info.value)


def test_metadata_is_read_from_the_header_alone(tmp_path, small_model):
    path = tmp_path / "net.safetensors"
    save_weights(small_model, path, {"thresholds": {"cup": 0.3}})
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    path.write_bytes(data[:header_end])  # the tensors are gone, the header is whole
    assert read_metadata(path)["thresholds"] == {"cup": 0.3}
    path.write_bytes(data[: header_end // 2])
    with pytest.raises(WeightsError, match="truncated"):
        read_metadata(path)
