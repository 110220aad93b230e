"""The engine on a CUDA GPU gives what it gives on the CPU (skipped where there is no GPU)."""

import gc

import numpy as np
import pytest
import torch
from conftest import synthetic_fundus

from napari_attunet import load_model, segment
from napari_attunet.augment import sample_view
from napari_attunet.datasets import samples_from_arrays
from napari_attunet.measure import dice
from napari_attunet.preprocessing import disc_geometry
from napari_attunet.training import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_segment_on_cuda_matches_the_cpu(retina, retina_result):
    on_gpu = segment(retina, load_model(device="cuda"), device="cuda")
    assert on_gpu.provenance["device"].startswith("cuda")
    assert on_gpu.provenance["weights_sha256"] == retina_result.provenance["weights_sha256"]
    assert dice(on_gpu.disc, retina_result.disc) > 0.99
    assert dice(on_gpu.cup, retina_result.cup) > 0.98
    assert abs(on_gpu.vcdr - retina_result.vcdr) < 0.01
    for gpu_map, cpu_map in zip(on_gpu.attention, retina_result.attention, strict=True):
        assert np.abs(gpu_map - cpu_map).max() < 0.02


def test_a_seed_gives_the_same_training_view_on_either_device():
    image, disc, cup = synthetic_fundus(size=512, disc_radius=60, cup_radius=25)
    pixels = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    masks = torch.from_numpy(np.stack([disc, cup]).astype(np.uint8))
    geometry = disc_geometry(disc)
    views = []
    for device in ("cpu", "cuda"):
        generator = torch.Generator().manual_seed(7)
        views.append([t.cpu() for t in sample_view(pixels.to(device), masks.to(device), geometry, 128,
                                                   generator)])
    (x_cpu, y_cpu), (x_gpu, y_gpu) = views
    assert torch.allclose(x_cpu, x_gpu, atol=1e-3)
    assert torch.allclose(y_cpu, y_gpu, atol=1e-3)


def test_training_on_cuda_writes_weights_and_releases_the_gpu(tmp_path):
    samples = samples_from_arrays([synthetic_fundus(seed=i) for i in range(4)])
    gc.collect()
    before = torch.cuda.memory_allocated()
    config = TrainConfig(epochs=2, batch_size=2, input_size=64, base_channels=4, depth=3, val_fraction=0.25,
                         val_every=1, device="cuda", warmup_epochs=1)
    out = train(samples, tmp_path / "net.safetensors", config)
    model = load_model(out, device="cpu")
    assert model.weights_info.metadata["training"]["device"].startswith("cuda")
    gc.collect()
    assert torch.cuda.memory_allocated() - before < 1 << 20  # nothing of the run stays on the GPU
