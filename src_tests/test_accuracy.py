"""The shipped weights on the 51 Drishti-GS1 test images (runs where ../shared has the dataset)."""

import pytest


@pytest.mark.slow
def test_default_weights_meet_the_minimum_on_the_drishti_test_split(drishti):
    from napari_attunet.evaluation import evaluate

    report = evaluate(drishti, split="test", device="cpu")
    summary = report["summary"]
    assert summary["images"] == 51
    assert summary["discs_not_found"] == 0
    assert summary["dice_od"] >= 0.96, summary
    assert summary["dice_oc"] >= 0.88, summary
    assert summary["vcdr_abs_error"] <= 0.06, summary
