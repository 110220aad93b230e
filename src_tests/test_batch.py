"""The ``segment`` batch: every accident of a real study's run, reproduced and handled.

A tiny seeded random network stands in for the shipped weights: these tests check the
machinery (records, resume, locking, collisions), not the segmentation.
"""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_attunet import segment_command
from napari_attunet.cli import main
from napari_attunet.run_lock import LockHeld, LockInfo, RunLock, is_stale, read_lock
from napari_attunet.run_records import STATE_DIR, OutputFolder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import torch

    from napari_attunet.model import AttentionUNet
    from napari_attunet.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(AttentionUNet(base_channels=4, depth=3).eval(), path)
    return path


def photo(path: Path, seed: int = 0, size: int = 96) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def segment(tiny_weights, *args) -> int:
    return main(["segment", *map(str, args), "--weights", str(tiny_weights), "--device", "cpu"])


def table(out: Path) -> dict[str, dict]:
    with open(out / "results.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    names = [row["image"] for row in rows]
    assert len(names) == len(set(names)), f"duplicate rows: {names}"
    return {row["image"]: row for row in rows}


def records(out: Path) -> dict[str, dict]:
    return {record["relative"]: record for record in OutputFolder(out).iter_records()}


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith((".tmp", ".stale"))]


def test_unusual_files_are_rows_and_the_run_goes_on(tmp_path, tiny_weights, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    # 15000 x 15000 pixels in a few hundred kilobytes: Pillow refuses it as a decompression bomb
    Image.new("1", (15000, 15000)).save(photos / "a_bomb.png")
    import tifffile

    tifffile.imwrite(photos / "b_uint32.tif", np.full((96, 96, 3), 70000, np.uint32), photometric="rgb")
    (photos / "c_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    strange = os.fsdecode(b"d_\xff\xfename.png")  # not valid UTF-8
    photo(photos / strange)
    photo(photos / "e_last.png", seed=1)
    out = tmp_path / "out"
    assert segment(tiny_weights, photos, "--out", out) == 1
    rows = table(out)
    # every file has its row (the uint32 TIFF: done, or an explicit error) and the files after them were done
    assert set(rows) == {"a_bomb.png", "b_uint32.tif", "c_broken.jpg", "d_\\xff\\xfename.png", "e_last.png"}
    assert rows["a_bomb.png"]["status"].startswith("error: ")
    assert rows["c_broken.jpg"]["status"].startswith("error: ")
    for name in ("d_\\xff\\xfename.png", "e_last.png"):
        assert not rows[name]["status"].startswith("error"), rows[name]
    assert (out / os.fsdecode(b"d_\xff\xfename_disc.png")).is_file()
    assert (out / "e_last_cup.png").is_file()
    assert "Traceback" not in capsys.readouterr().err


def test_same_named_files_in_different_folders_stay_apart(tmp_path, tiny_weights):
    study = tmp_path / "study"
    photo(study / "a" / "img.png", seed=1)
    photo(study / "b" / "img.png", seed=2)
    out = tmp_path / "out"
    assert segment(tiny_weights, study / "a", study / "b", "--out", out) == 0
    assert set(table(out)) == {"a/img.png", "b/img.png"}
    first = (out / "a" / "img_disc.png").read_bytes(), (out / "b" / "img_disc.png").read_bytes()
    # the same study searched recursively gives the same relative paths
    again = tmp_path / "again"
    assert segment(tiny_weights, study, "--recursive", "--out", again) == 0
    assert set(table(again)) == {"a/img.png", "b/img.png"}
    assert ((again / "a" / "img_disc.png").read_bytes(), (again / "b" / "img_disc.png").read_bytes()) == first
    # two files whose outputs would share a name: the second is an explicit error, nothing is replaced
    photo(study / "a" / "img.bmp", seed=3)
    assert segment(tiny_weights, study, "--recursive", "--out", again) == 1
    rows = table(again)
    assert rows["a/img.bmp"]["status"].startswith("error: its outputs would replace those of a/img.png")
    assert (again / "a" / "img_disc.png").read_bytes() == first[0]


def test_resume_skips_finished_redoes_incomplete_retries_failed_and_adds_new(tmp_path, tiny_weights, capsys):
    photos = tmp_path / "photos"
    for name in ("one", "two", "three"):
        photo(photos / f"{name}.png", seed=len(name))
    (photos / "four.png").write_bytes(b"not yet a photo")
    out = tmp_path / "out"
    assert segment(tiny_weights, photos, "--out", out) == 1
    before = records(out)
    assert table(out)["four.png"]["status"].startswith("error")
    kept = (out / "one_disc.png").stat().st_mtime_ns
    (out / "two_cup.png").unlink()  # an incomplete image
    photo(photos / "three.png", seed=9, size=120)  # replaced by another photo
    photo(photos / "four.png", seed=4)  # the failed file, repaired
    photo(photos / "five.png", seed=5)  # a new file
    capsys.readouterr()
    assert segment(tiny_weights, photos, "--out", out) == 0
    assert "1 of 5 images already done" in capsys.readouterr().err
    after = records(out)
    assert after["one.png"] == before["one.png"]
    assert after["three.png"]["run"] != before["three.png"]["run"]
    assert np.asarray(Image.open(out / "three_disc.png")).shape == (120, 120)
    assert (out / "one_disc.png").stat().st_mtime_ns == kept
    assert after["two.png"]["run"] != before["two.png"]["run"] and (out / "two_cup.png").is_file()
    rows = table(out)
    assert set(rows) == {f"{n}.png" for n in ("one", "two", "three", "four", "five")}
    assert not any(row["status"].startswith("error") for row in rows.values())
    assert not leftovers(out)


def test_output_folder_inside_the_inputs_is_not_segmented(tmp_path, tiny_weights):
    for name, inside in (("same", ""), ("below", "results")):
        photos = tmp_path / name
        photo(photos / "eye.png")
        out = photos / inside
        for _ in range(2):
            assert segment(tiny_weights, photos, "--recursive", "--out", out) == 0
            assert set(table(out)) == {"eye.png"}


def test_changed_settings_are_refused_unless_overwrite(tmp_path, tiny_weights, capsys):
    photos = tmp_path / "photos"
    photo(photos / "a.png", seed=1)
    photo(photos / "b.png", seed=2)
    out = tmp_path / "out"
    assert segment(tiny_weights, photos, "--out", out) == 0
    csv_before = (out / "results.csv").read_bytes()
    capsys.readouterr()
    for change in (["--cup-threshold", "0.3"], ["--tta"], ["--attention"]):
        assert segment(tiny_weights, photos, "--out", out, *change) == 2
        assert "other settings" in capsys.readouterr().err
    assert (out / "results.csv").read_bytes() == csv_before
    assert segment(tiny_weights, photos, "--out", out, "--disc-threshold", "0.5") == 0  # the weights' own value
    assert segment(tiny_weights, photos, "--out", out, "--cup-threshold", "0.3", "--overwrite") == 0
    assert {row["cup_threshold"] for row in table(out).values()} == {"0.3"}
    assert segment(tiny_weights, photos, "--out", out, "--cup-threshold", "0.3") == 0  # resumes the new run


def test_table_of_an_older_version_is_not_replaced_without_overwrite(tmp_path, tiny_weights, capsys):
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("image,status\nold.png,ok\n")
    assert segment(tiny_weights, photos, "--out", out) == 2
    assert "no run records" in capsys.readouterr().err
    assert segment(tiny_weights, photos, "--out", out, "--overwrite") == 0
    assert set(table(out)) == {"a.png"}


def full_disk_after(monkeypatch, writes: int):
    calls = []
    real = segment_command.write_image

    def write_image(path, array):
        calls.append(path)
        if len(calls) > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, array)

    monkeypatch.setattr(segment_command, "write_image", write_image)


def test_full_disk_stops_the_run_keeps_the_table_and_resumes(tmp_path, tiny_weights, monkeypatch, capsys):
    photos = tmp_path / "photos"
    for k in range(4):
        photo(photos / f"p{k}.png", seed=k)
    out = tmp_path / "out"
    full_disk_after(monkeypatch, writes=5)  # disc and cup of two images, then the disk is full
    assert segment(tiny_weights, photos, "--out", out) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Re-run the same command to resume" in err
    assert set(table(out)) == {"p0.png", "p1.png"}
    assert not leftovers(out)
    monkeypatch.undo()
    assert segment(tiny_weights, photos, "--out", out) == 0
    assert set(table(out)) == {f"p{k}.png" for k in range(4)}


def test_overwrite_stopped_half_way_keeps_no_row_of_the_old_settings(tmp_path, tiny_weights, monkeypatch):
    photos = tmp_path / "photos"
    for k in range(3):
        photo(photos / f"p{k}.png", seed=k)
    out = tmp_path / "out"
    assert segment(tiny_weights, photos, "--out", out) == 0
    full_disk_after(monkeypatch, writes=2)
    assert segment(tiny_weights, photos, "--out", out, "--cup-threshold", "0.3", "--overwrite") == 2
    rows = table(out)
    assert set(rows) == {"p0.png"} and rows["p0.png"]["cup_threshold"] == "0.3"


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, tiny_weights, capsys):
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    out = tmp_path / "out"
    with RunLock(OutputFolder(out).lock_path):
        assert segment(tiny_weights, photos, "--out", out) == 2
        assert "in use by another run" in capsys.readouterr().err
        assert not (out / "results.csv").exists()
    assert segment(tiny_weights, photos, "--out", out) == 0


def lock_file(path: Path, host: str, pid: int, heartbeat: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": heartbeat, "heartbeat": heartbeat,
                                "token": "other"}))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_staleness_rule(tmp_path):
    import socket

    here, now = socket.gethostname(), time.time()
    assert is_stale(LockInfo(here, dead_pid(), now, now, "t"))
    assert not is_stale(LockInfo(here, os.getpid(), now, now, "t"))
    assert is_stale(LockInfo(here, os.getpid(), now, now - 601, "t"))  # alive but hung (or a reused id)
    assert not is_stale(LockInfo("other-node", 1, now, now - 60, "t"))  # another host: the heartbeat decides
    assert is_stale(LockInfo("other-node", 1, now, now - 601, "t"))
    path = tmp_path / "lock.json"
    for host, pid, heartbeat, free in ((here, dead_pid(), now, True), ("other-node", 1, now - 10, False),
                                       ("other-node", 1, now - 3600, True)):
        lock_file(path, host, pid, heartbeat)
        lock = RunLock(path)
        if free:
            lock.acquire()
            assert read_lock(path).token == lock.info.token
            lock.release()
            assert not path.exists()
        else:
            with pytest.raises(LockHeld, match="other-node"):
                lock.acquire()
    path.write_text("{damaged")
    with RunLock(path):
        assert read_lock(path).pid == os.getpid()


def test_lock_heartbeat_and_takeover_detection(tmp_path):
    path = tmp_path / "lock.json"
    lock = RunLock(path, heartbeat_interval=0.05)
    lock.acquire()
    first = read_lock(path).heartbeat
    deadline = time.time() + 120
    while read_lock(path).heartbeat == first and time.time() < deadline:
        time.sleep(0.05)
    assert read_lock(path).heartbeat > first
    lock.release()
    assert not path.exists()
    lock = RunLock(path, heartbeat_interval=3600)  # beats only when told to, below
    lock.acquire()
    lock_file(path, "other-node", 1, time.time())  # another run judged this one stale and took over
    lock.refresh()
    assert lock.lost
    lock.release()
    assert read_lock(path).host == "other-node"  # the other run's lock is neither rewritten nor deleted


def check_no_broken_file(out: Path) -> dict[str, dict]:
    """Every record parses and lists complete, decodable outputs; returns the records."""
    found = records(out)
    for record in found.values():
        for kind, size in record["outputs"].items():
            stem = Path(record["relative"]).with_suffix("")
            path = out / f"{stem}_{kind}.png"
            assert path.stat().st_size == size
            with Image.open(path) as image:
                image.load()
    for path in out.rglob("*.png"):
        if not path.name.startswith("."):
            with Image.open(path) as image:
                image.load()
    return found


def test_kill_9_during_a_run_then_resume_does_every_image_exactly_once(tmp_path, tiny_weights, capsys):
    photos = tmp_path / "photos"
    count = 24
    for k in range(count):
        photo(photos / f"p{k:02d}.png", seed=k, size=160)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "napari_attunet", "segment", str(photos), "--out", str(out), "--weights",
               str(tiny_weights), "--device", "cpu", "--attention", "--overlay"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while len(records(out)) < 3 and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, "the run ended before it could be killed"
    # a second run on the same folder while the first one works is refused
    assert segment(tiny_weights, photos, "--out", out, "--attention", "--overlay") == 2
    assert "in use by another run" in capsys.readouterr().err
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = check_no_broken_file(out)
    assert 3 <= len(before) < count
    assert (out / STATE_DIR / "lock.json").exists()  # left by the killed run; its process is gone
    assert segment(tiny_weights, photos, "--out", out, "--attention", "--overlay") == 0
    after = check_no_broken_file(out)
    assert set(after) == {f"p{k:02d}.png" for k in range(count)}
    assert all(after[name] == record for name, record in before.items())  # finished images were not redone
    assert set(table(out)) == set(after)
    assert not leftovers(out)
    assert not (out / STATE_DIR / "lock.json").exists()


def test_sigterm_stops_cleanly_with_the_table_of_finished_images(tmp_path, tiny_weights):
    photos = tmp_path / "photos"
    for k in range(16):
        photo(photos / f"p{k:02d}.png", seed=k, size=160)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "napari_attunet", "segment", str(photos), "--out", str(out), "--weights",
               str(tiny_weights), "--device", "cpu", "--attention"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while len(records(out)) < 2 and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, "the run ended before it could be stopped"
    child.send_signal(signal.SIGTERM)  # what a cluster's scheduler sends at a job's time limit
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "terminated" in err and "Re-run the same command to resume" in err
    assert set(table(out)) == set(records(out)) and 2 <= len(records(out)) < 16
    assert not (out / STATE_DIR / "lock.json").exists()


def test_max_pixels_is_a_setting_and_a_refused_photo_is_its_row(tmp_path, tiny_weights):
    import csv

    from PIL import Image

    from napari_attunet.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(folder / "large.png")
    Image.fromarray(rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)).save(folder / "small.png")
    out = tmp_path / "out"
    code = main(["segment", str(folder), "--out", str(out), "--weights", str(tiny_weights), "--device", "cpu",
                 "--max-pixels", "10000"])
    assert code == 1
    rows = {r["image"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert rows["large.png"]["status"].startswith("error") and "pixels" in rows["large.png"]["status"]
    assert not rows["small.png"]["status"].startswith("error")


def test_folders_are_listed_lazily_and_each_file_is_taken_once(tmp_path, monkeypatch):
    for name in ("b.png", "a.png", "sub/c.png", "sub/.hidden.png", "notes.txt"):
        photo(tmp_path / "study" / name) if name.endswith(".png") else (tmp_path / "study" / name).touch()
    (tmp_path / "study" / "z_link.png").symlink_to(tmp_path / "study" / "a.png")  # a second name of a.png
    scanned = []
    scandir = os.scandir
    monkeypatch.setattr(segment_command.os, "scandir", lambda path: scanned.append(Path(path)) or scandir(path))
    problems = []
    jobs = segment_command.iter_inputs([str(tmp_path / "study"), str(tmp_path / "study" / "b.png")],
                                       recursive=True, problems=problems)
    first = next(jobs)
    # the first image comes before the subfolder is listed: the inputs are never all in memory at once
    assert first.relative == "a.png" and scanned == [tmp_path / "study"]
    assert [first.relative] + [job.relative for job in jobs] == ["a.png", "b.png", "sub/c.png"]
    assert scanned == [tmp_path / "study", tmp_path / "study" / "sub"] and not problems


def test_key_table_keeps_every_key_as_it_grows():
    from napari_attunet.key_table import KeyTable, path_key

    table, keys = KeyTable(capacity=4), [path_key(f"photo{i}.png") for i in range(5000)]
    assert len(set(keys)) == 5000
    assert all(table.setdefault(key, i) == i for i, key in enumerate(keys))
    assert [table.get(key) for key in keys] == list(range(5000)) and len(table) == 5000
    assert not table.add(keys[17]) and table.get(path_key("another.png")) is None
    found = KeyTable(capacity=4, values=False)
    assert all(found.add(key) for key in keys) and not any(found.add(key) for key in keys)
    assert all(key in found for key in keys) and path_key("another.png") not in found and len(found) == 5000


def test_a_table_of_many_sorting_chunks_is_sorted_by_path_in_csv_and_parquet(tmp_path, monkeypatch):
    from napari_attunet import tables
    from napari_attunet.image_files import rows_to_csv

    monkeypatch.setattr(tables, "CHUNK_ROWS", 3)  # 20 rows: 7 chunks sorted on disk, then merged
    names = [f"{folder}/photo{i:02d}.png" for i, folder in zip(range(20), ["b", "a", "a\u00e9", "A"] * 5)]
    rng = np.random.default_rng(0)
    shuffled = [names[i] for i in rng.permutation(len(names))]
    records = [{"relative": name, "row": {"image": name, "status": "ok", "vcdr": i / 20}}
               for i, name in enumerate(shuffled)]
    columns = segment_command.CSV_COLUMNS
    tables.write_tables(iter(records), columns, tmp_path / "results.csv", tmp_path / "results.parquet")
    expected = sorted((record["row"] for record in records), key=lambda row: os.fsencode(row["image"]))
    assert (tmp_path / "results.csv").read_text(encoding="utf-8") == rows_to_csv(expected, columns)
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert [row["image"] for row in parquet] == [row["image"] for row in expected]
    assert [row["vcdr"] for row in parquet] == [row["vcdr"] for row in expected]
    tables.write_tables(iter([]), columns, tmp_path / "empty.csv", tmp_path / "empty.parquet")
    assert (tmp_path / "empty.csv").read_text() == rows_to_csv([], columns)
    assert pq.read_table(tmp_path / "empty.parquet").column_names == columns


def test_segment_without_dask_imports_neither_dask_nor_pyarrow(tmp_path, tiny_weights):
    photo(tmp_path / "in" / "a.png")
    script = ("import sys; from napari_attunet.cli import main; "
              f"code = main(['segment', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'out')!r}, "
              f"'--weights', {str(tiny_weights)!r}, '--device', 'cpu']); "
              "print(code, sorted(m for m in ('dask', 'distributed', 'pyarrow') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["0", "[]"], done.stdout + done.stderr
