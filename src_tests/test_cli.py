import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_attunet.cli import main


@pytest.fixture
def photos(tmp_path, retina):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(retina[300:1000, 0:700]).save(folder / "eye_a.png")
    Image.fromarray(retina[::2, ::2]).save(folder / "eye_b.jpg", quality=95)
    return folder


def test_segment_writes_masks_attention_and_csv(tmp_path, photos, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(photos), "--out", str(out), "--attention", "--device", "cpu"]) == 0
    for stem, shape in (("eye_a", (700, 700)), ("eye_b", (706, 706))):
        disc = np.asarray(Image.open(out / f"{stem}_disc.png"))
        cup = np.asarray(Image.open(out / f"{stem}_cup.png"))
        assert disc.shape == shape and disc.dtype == np.uint8
        assert set(np.unique(disc)) <= {0, 255} and disc.any()
        assert not (cup & ~disc).any()
        assert len(list(out.glob(f"{stem}_attention_*.png"))) == 4
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["image"] for r in rows] == ["eye_a.png", "eye_b.jpg"]
    assert all(0 < float(r["vcdr"]) < 1 and not r["status"].startswith("error") and r["weights_sha256"] for r in rows)
    from napari_attunet.inference import LOW_CONFIDENCE

    for row in rows:  # the confidence column and the status say the same
        confidence = float(row["confidence"])
        assert 0 < confidence <= 1
        assert ("low confidence" in row["status"]) == (confidence < LOW_CONFIDENCE)
    from napari_attunet.weights import stored_thresholds

    own = stored_thresholds()
    assert all((float(r["disc_threshold"]), float(r["cup_threshold"])) == own for r in rows)
    assert not list(out.glob("*.tmp"))


def test_a_rerun_keeps_finished_outputs_and_overwrite_redoes_them(tmp_path, photos):
    out = tmp_path / "out"
    assert main(["segment", str(photos / "eye_a.png"), "--out", str(out)]) == 0
    before = (out / "eye_a_disc.png").stat().st_mtime_ns
    assert main(["segment", str(photos / "eye_a.png"), "--out", str(out)]) == 0  # resumed: nothing left to do
    assert (out / "eye_a_disc.png").stat().st_mtime_ns == before
    assert main(["segment", str(photos / "eye_a.png"), "--out", str(out), "--overwrite"]) == 0
    assert (out / "eye_a_disc.png").stat().st_mtime_ns != before


def test_unreadable_files_are_reported_skipped_and_fail_the_run(tmp_path, photos, capsys):
    (photos / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    assert main(["segment", str(photos), "--out", str(out)]) == 1
    assert "broken.png" in capsys.readouterr().err
    rows = {r["image"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert rows["broken.png"]["status"].startswith("error")
    assert not rows["eye_a.png"]["status"].startswith("error")


def test_evaluate_prints_a_table_and_json(tmp_path, retina, capsys):
    from napari_attunet import segment

    crop = retina[450:850, 40:440]
    result = segment(crop, device="cpu", attention=False)
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(crop).save(folder / "r.png")
    Image.fromarray(result.disc.astype(np.uint8) * 255).save(folder / "r_disc.png")
    Image.fromarray(result.cup.astype(np.uint8) * 255).save(folder / "r_cup.png")
    assert main(["evaluate", "--data", str(folder), "--json"]) == 0
    import json

    from napari_attunet.weights import stored_thresholds

    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["dice_od"] > 0.95
    assert report["summary"]["dice_oc"] > 0.99  # the masks came from the same thresholds
    own_cup = stored_thresholds()[1]
    assert report["provenance"]["cup_threshold"] == own_cup
    assert main(["evaluate", "--data", str(folder), "--json", "--cup-threshold", "0.9"]) == 0
    stricter = json.loads(capsys.readouterr().out)
    assert stricter["provenance"]["cup_threshold"] == 0.9
    assert stricter["summary"]["dice_oc"] < report["summary"]["dice_oc"]
    assert main(["evaluate", "--data", str(folder)]) == 0
    assert "MEAN" in capsys.readouterr().out


def test_segment_help_documents_the_exit_codes():
    done = subprocess.run([sys.executable, "-m", "napari_attunet", "segment", "--help"], capture_output=True,
                          text=True)
    text = " ".join(done.stdout.split())
    assert "0 every image done; 1 some images failed" in text and "2 the run could not start or had to stop" in text


def test_module_entry_point_and_bad_arguments(tmp_path):
    done = subprocess.run([sys.executable, "-m", "napari_attunet", "segment", str(tmp_path / "missing.png"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "missing.png" in done.stderr and "Traceback" not in done.stderr
