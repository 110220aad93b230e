"""What training does with the files around it: existing outputs, resume states, leftovers of a killed run."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, synthetic_fundus
from test_training import tiny_config

from napari_attunet import load_model
from napari_attunet.atomic import atomic_write_bytes, stale_temporaries
from napari_attunet.cli import main
from napari_attunet.datasets import samples_from_arrays
from napari_attunet.training import iter_train, resume_path, train
from napari_attunet.weights import read_metadata


@pytest.fixture(scope="module")
def samples():
    return samples_from_arrays([synthetic_fundus(seed=i)[0:3] for i in range(4)])


def interrupted_run(samples, out, config, after_epoch=1):
    """Train until ``after_epoch`` has ended, then stop as a kill between epochs would."""
    generator = iter_train(samples, out, config)
    for event in generator:
        if event.stage == "validate" and event.metrics["epoch"] == after_epoch:
            break
    generator.close()


def test_train_refuses_to_replace_an_existing_weights_file_unless_asked(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    out.write_bytes(b"a user's own file")
    with pytest.raises(ValueError, match="exists.*overwrite"):
        train(samples, out, tiny_config())
    assert out.read_bytes() == b"a user's own file"
    train(samples, out, tiny_config(epochs=1), overwrite=True)
    assert read_metadata(out)["training"]["epochs_trained"] == 1


def test_cli_train_refuses_an_existing_out_before_loading_data_and_resume_continues_into_it(tmp_path, samples,
                                                                                              capsys):
    out = tmp_path / "net.safetensors"
    interrupted_run(samples, out, tiny_config(epochs=2))
    before = out.read_bytes()
    code = main(["train", "--data", str(tmp_path / "no-such-folder"), "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err
    assert "net.safetensors exists" in error and "--overwrite" in error and "--resume" in error
    assert out.read_bytes() == before
    # --resume is not refused by the same check: it continues into the same --out.
    events = list(iter_train(samples, out, tiny_config(epochs=2), resume=True))
    assert [e.metrics["epoch"] for e in events if e.stage == "validate"] == [2]
    assert read_metadata(out)["training"]["epochs_trained"] == 2


def test_overwrite_starts_afresh_and_discards_the_replaced_runs_resume_state(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    interrupted_run(samples, out, tiny_config(epochs=3))
    assert resume_path(out).is_file()
    generator = iter_train(samples, out, tiny_config(epochs=3, seed=1), overwrite=True)
    next(generator)  # the first step has run
    generator.close()
    assert not resume_path(out).exists()  # a kill now cannot resume the replaced run into the new one


def test_resume_without_a_resume_state_is_refused(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    with pytest.raises(ValueError, match="no resume state"):
        train(samples, out, tiny_config(), resume=True)
    assert not out.exists()


def test_resume_with_other_settings_or_images_is_refused_naming_the_file(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    interrupted_run(samples, out, tiny_config(epochs=3))
    with pytest.raises(ValueError, match=r"resume\.safetensors.*epochs 3 -> 6") as info:
        train(samples, out, tiny_config(epochs=6), resume=True)
    assert "overwrite" in str(info.value)
    with pytest.raises(ValueError, match="train_images"):
        train(samples[:3], out, tiny_config(epochs=3), resume=True)
    # Where it runs may change.
    train(samples, out, tiny_config(epochs=3, threads=1), resume=True)
    assert read_metadata(out)["training"]["epochs_trained"] == 3


def test_resume_state_of_another_network_or_truncated_is_a_clear_error(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    interrupted_run(samples, out, tiny_config(epochs=3))
    state_file = resume_path(out)
    data = state_file.read_bytes()

    state_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="resume.safetensors") as info:
        train(samples, out, tiny_config(epochs=3), resume=True)
    assert "overwrite" in str(info.value)

    # A state without recorded settings (older files) from a wider network: caught by the tensors' shapes.
    from safetensors.torch import load_file, save_file

    state_file.write_bytes(data)
    tensors = load_file(str(state_file))
    tensors = {k: (torch.cat([v, v]) if k == "model.encoders.0.0.weight" else v) for k, v in tensors.items()}
    state = {"epoch": 1, "best_score": -1.0, "best_epoch": 0, "history": [], "seconds": 1.0}
    save_file(tensors, str(state_file), metadata={"napari_attunet_resume": json.dumps(state)})
    with pytest.warns(UserWarning, match="records no run settings"), \
            pytest.raises(ValueError, match="another network.*encoders.0.0.weight"):
        train(samples, out, tiny_config(epochs=3), resume=True)


def test_a_new_run_removes_temporary_files_of_killed_runs_and_nothing_else(tmp_path, samples):
    out = tmp_path / "net.safetensors"
    # A writer killed mid-write: a real process that is gone by now.
    code = ("import os, sys; from napari_attunet.atomic import atomic_write_bytes as w; "
            "import napari_attunet.atomic as a; a.os.replace = lambda *x: os._exit(9); "
            "w(sys.argv[1], b'x' * 1000)")
    for target in (out, resume_path(out)):
        result = subprocess.run([sys.executable, "-c", code, str(target)], check=False,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert result.returncode == 9
    left = sorted(p.name for p in tmp_path.glob("*.tmp"))
    assert len(left) == 2 and all(name.startswith(".net.safetensors.") for name in left)
    # Not ours, or still being written by a live process: kept.
    from napari_attunet.atomic import _host

    mine_alive = tmp_path / f".net.safetensors.{_host()}-{os.getpid()}.abcdefgh.tmp"
    mine_alive.write_bytes(b"live")
    foreign = [tmp_path / ".net.safetensors.notes.tmp", tmp_path / "net.safetensors.tmp",
               tmp_path / ".other.safetensors.host-1.abcdefgh.tmp"]
    for path in foreign:
        path.write_bytes(b"keep")
    assert {p.name for p in stale_temporaries(out)} | {p.name for p in stale_temporaries(resume_path(out))} \
        == set(left)
    train(samples, out, tiny_config(epochs=1))
    remaining = {p.name for p in tmp_path.glob("*.tmp")} | {p.name for p in tmp_path.glob(".*.tmp")}
    assert remaining == {mine_alive.name} | {p.name for p in foreign}
    assert load_model(out, device="cpu")


def test_atomic_writes_name_their_writer(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(a), real_replace(a, b)))
    atomic_write_bytes(tmp_path / "x.bin", b"1")
    assert f"-{os.getpid()}." in os.path.basename(seen[0])
    assert (tmp_path / "x.bin").read_bytes() == b"1"
