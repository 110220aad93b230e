"""Cohort scale: ``segment --dask`` on a Dask cluster and ``torchrun`` training on several processes.

A tiny seeded random network stands in for the shipped weights: these tests check that
the distributed paths give the same results as one process, and lose no work when
processes die.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import test_batch
from conftest import synthetic_fundus
from PIL import Image
from test_batch import check_no_broken_file, photo, records, table

tiny_weights = test_batch.tiny_weights  # the fixture

pytest.importorskip("distributed")
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO),
                                                                            os.environ.get("PYTHONPATH", "")])}


def command(tiny_weights, *args) -> list[str]:
    # --min-confidence 0: the untrained network's faint outlines are kept, so every row has numbers.
    return [sys.executable, "-m", "napari_attunet", "segment", *map(str, args), "--min-confidence", "0",
            "--weights", str(tiny_weights),
            "--device", "cpu"]


def photos(folder: Path, count: int, size: int = 96) -> list[Path]:
    return [photo(folder / f"group{i % 2}" / f"photo{i:02d}.png", seed=i, size=size) for i in range(count)]


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker cluster the tests join with ``--dask tcp://...`` (and whose workers they may kill)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local, \
            Client(local, set_as_default=False) as client:
        client.run(os.environ.__setitem__, "OMP_NUM_THREADS", "1")
        yield local.scheduler_address, client


def without_timing(rows: dict[str, dict]) -> dict[str, dict]:
    return {name: {k: v for k, v in row.items() if k != "seconds"} for name, row in rows.items()}


def test_local_cluster_writes_the_same_masks_and_rows_as_in_process(tmp_path, tiny_weights):
    photos(tmp_path / "in", 6)
    alone, spread = tmp_path / "alone", tmp_path / "spread"
    subprocess.run(command(tiny_weights, tmp_path / "in", "--recursive", "--out", alone), env=ENV, check=True)
    subprocess.run(command(tiny_weights, tmp_path / "in", "--recursive", "--out", spread, "--dask", "local:2",
                           "--table", "results.parquet"), env=ENV, check=True)
    masks = sorted(p.relative_to(alone) for p in alone.rglob("*.png"))
    assert len(masks) == 12
    for mask in masks:
        assert (spread / mask).read_bytes() == (alone / mask).read_bytes(), mask
    assert without_timing(table(spread)) == without_timing(table(alone))
    # each record was written by a worker process, not by the client
    assert {record["pid"] for record in records(spread).values()}.isdisjoint(
        {record["pid"] for record in records(alone).values()})
    import pyarrow.parquet as pq

    parquet = pq.read_table(spread / "results.parquet").to_pylist()
    assert [row["image"] for row in parquet] == list(table(spread))
    assert [row["vcdr"] for row in parquet] == pytest.approx(
        [float(row["vcdr"]) for row in table(spread).values()])


def test_bad_cluster_and_table_names_are_refused_before_the_run(tmp_path, tiny_weights):
    photos(tmp_path / "in", 1)
    for extra in (["--dask", "local:zero"], ["--dask", "nowhere"], ["--table", "../t.parquet"]):
        done = subprocess.run(command(tiny_weights, tmp_path / "in", "--recursive", "--out", tmp_path / "o",
                                      *extra), check=False, env=ENV, capture_output=True, text=True)
        assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr, extra
    assert not (tmp_path / "o" / "results.csv").exists()


def test_a_local_cluster_gives_its_workers_the_cores_and_a_fast_malloc(monkeypatch):
    from napari_attunet.dask_batch import available_cores, close, connect, torch_threads

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # a cluster started in this process set it
    for setting, expected in ((None, available_cores()), ("3", 3)):
        if setting is None:  # Dask alone would give the worker OMP_NUM_THREADS=1: one core of all
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:  # the user's setting is kept
            monkeypatch.setenv("OMP_NUM_THREADS", setting)
        client = connect("local:1")
        try:  # the torch threads of the worker's only Dask thread
            assert list(client.run(torch_threads, 1).values()) == [expected]
            # without Dask's malloc setting, which doubles the time per image
            assert list(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == [None]
        finally:
            close(client)


def wait_for_records(out: Path, count: int, process: subprocess.Popen, limit: float = 600) -> int:
    start = time.monotonic()
    while time.monotonic() - start < limit and process.poll() is None:
        found = len(list((out / ".napari-attunet" / "records").rglob("*.json")))
        if found >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} records did not appear (exit status {process.poll()})")


def test_client_killed_then_resumed_does_every_image_exactly_once(tmp_path, tiny_weights, cluster):
    address, _ = cluster
    photos(tmp_path / "in", 12, size=160)
    out = tmp_path / "out"
    run = command(tiny_weights, tmp_path / "in", "--recursive", "--out", out, "--dask", address)
    client = subprocess.Popen(run, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_records(out, 2, client)
    client.send_signal(signal.SIGKILL)
    client.wait()
    before = {name: record["finished"] for name, record in records(out).items()}
    assert 2 <= len(before) < 12
    done = subprocess.run(run, check=False, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = check_no_broken_file(out)
    rows = table(out)
    assert len(rows) == 12 and all(not row["status"].startswith("error") for row in rows.values())
    # the images finished before the kill were not done again
    assert all(after[name]["finished"] == finished for name, finished in before.items())


def test_a_worker_killed_mid_run_loses_no_image(tmp_path, tiny_weights, cluster):
    address, client = cluster
    photos(tmp_path / "in", 16, size=160)
    out = tmp_path / "out"
    run = subprocess.Popen(command(tiny_weights, tmp_path / "in", "--recursive", "--out", out, "--dask", address),
                           env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = wait_for_records(out, 1, run)
    pids = client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    assert found < 16
    _, stderr = run.communicate(timeout=900)
    assert run.returncode == 0, stderr
    rows = table(out)
    assert len(rows) == 16 and all(not row["status"].startswith("error") for row in rows.values())
    check_no_broken_file(out)
    # each worker loads the network once, not once per task
    from napari_attunet.dask_batch import _worker_loads

    assert all(loads <= 1 for loads in client.run(_worker_loads).values())


def training_data(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        image, disc, cup = synthetic_fundus(seed=i)[0:3]
        Image.fromarray(image).save(folder / f"p{i}.png")
        Image.fromarray(disc.astype(np.uint8) * 255).save(folder / f"p{i}_disc.png")
        Image.fromarray(cup.astype(np.uint8) * 255).save(folder / f"p{i}_cup.png")
    return folder


def step_losses(path: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in path.read_text().splitlines()]


def test_two_process_torchrun_takes_the_single_process_steps(tmp_path):
    data = training_data(tmp_path / "data")
    train = ["-m", "napari_attunet", "train", "--data", str(data), "--epochs", "2", "--batch-size", "4",
             "--input-size", "64", "--base-channels", "4", "--depth", "3", "--val-fraction", "0", "--device", "cpu",
             "--threads", "1"]
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    subprocess.run([sys.executable, *train, "--out", str(one), "--step-log", str(tmp_path / "one.jsonl")],
                   env=ENV, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *train, "--out", str(two), "--step-log", str(tmp_path / "two.jsonl")],
                          check=False, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = step_losses(tmp_path / "one.jsonl")
    assert len(losses) == 2
    assert step_losses(tmp_path / "two.jsonl") == pytest.approx(losses, rel=1e-5)
    from napari_attunet import load_model
    from napari_attunet.weights import read_metadata

    load_model(two, device="cpu")
    assert read_metadata(two)["training"]["processes"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def resume_state(out: Path) -> dict:
    from napari_attunet.training import _read_resume_state, resume_path

    return _read_resume_state(resume_path(out))


def read_steps_from_pipe(pipe: Path, count: int, into: list) -> threading.Thread:
    """Read ``count`` step-log lines from the named pipe ``pipe``, then stop reading.

    The trainer opens its step log for each step, so once nobody reads, it waits at the next
    step's line: the run is held at a known point (the checkpoint of the epoch before is
    written) until it is killed.
    """
    def read() -> None:
        while len(into) < count:
            with open(pipe) as file:
                into.extend(json.loads(line) for line in file.read().splitlines())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow  # three training runs, two of them under torchrun (about a minute on 2 cores)
def test_torchrun_run_killed_after_a_checkpoint_resumes_with_the_uninterrupted_losses(tmp_path):
    data = training_data(tmp_path / "data")
    epochs, steps_per_epoch = 4, 2  # 4 images in global batches of 2
    train = ["-m", "napari_attunet", "train", "--data", str(data), "--epochs", str(epochs), "--batch-size", "2",
             "--input-size", "64", "--base-channels", "4", "--depth", "3", "--val-fraction", "0", "--device", "cpu",
             "--threads", "1"]
    one = tmp_path / "one.safetensors"
    subprocess.run([sys.executable, *train, "--out", str(one), "--step-log", str(tmp_path / "one.jsonl")],
                   env=ENV, check=True, capture_output=True)
    uninterrupted = step_losses(tmp_path / "one.jsonl")
    assert len(uninterrupted) == epochs * steps_per_epoch

    two, pipe = tmp_path / "two.safetensors", tmp_path / "steps.pipe"
    os.mkfifo(pipe)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *train,
                "--out", str(two)]
    with open(tmp_path / "first.err", "w") as errors:
        run = subprocess.Popen([*torchrun, "--step-log", str(pipe)], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=errors, start_new_session=True)
    before_kill: list[dict] = []
    reader = read_steps_from_pipe(pipe, steps_per_epoch + 1, before_kill)  # into the second epoch
    reader.join(timeout=600)
    import psutil  # a dependency of distributed

    # torchrun and both training processes (each in a session of its own), held in the second epoch
    trainers = psutil.Process(run.pid).children(recursive=True)
    os.killpg(run.pid, signal.SIGKILL)
    for trainer in trainers:
        trainer.kill()
    run.wait()
    psutil.wait_procs(trainers, timeout=60)
    if reader.is_alive():  # the run died early: let the reader go
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    assert len(before_kill) > steps_per_epoch, (tmp_path / "first.err").read_text()[-3000:]
    assert [entry["loss"] for entry in before_kill] == pytest.approx(uninterrupted[:len(before_kill)], rel=1e-5)
    checkpoint = resume_state(two)["epoch"]
    assert 1 <= checkpoint < epochs

    log = tmp_path / "resumed.jsonl"
    done = subprocess.run([*torchrun, "--step-log", str(log), "--resume"], check=False, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = [json.loads(line) for line in log.read_text().splitlines()]
    # the resumed run takes every step after the checkpoint, each with the uninterrupted run's loss
    assert [entry["step"] for entry in resumed] == list(range(checkpoint * steps_per_epoch + 1,
                                                              epochs * steps_per_epoch + 1))
    assert [entry["loss"] for entry in resumed] == pytest.approx(uninterrupted[checkpoint * steps_per_epoch:],
                                                                 rel=1e-5)
    from napari_attunet import load_model
    from napari_attunet.weights import read_metadata

    load_model(two, device="cpu")
    training = read_metadata(two)["training"]
    assert training["processes"] == 2 and training["epochs_trained"] == epochs
    assert resume_state(two)["epoch"] == epochs
    assert not list(tmp_path.glob(".*.tmp"))
