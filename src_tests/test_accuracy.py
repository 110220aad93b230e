"""The shipped weights on the 51 Drishti-GS1 test images (runs where ../shared has the dataset)."""

import pytest


@pytest.fixture(scope="module")
def test_split_report(drishti):
    from napari_attunet.evaluation import evaluate

    report = evaluate(drishti, split="test", device="cpu")
    assert report["summary"]["images"] == 51
    return report["summary"]


@pytest.mark.slow
def test_default_weights_do_not_regress(test_split_report):
    # Measured for the shipped weights: OD 0.961, OC 0.888, vCDR MAE 0.062 (docs/model-card.md).
    assert test_split_report["discs_not_found"] == 0
    assert test_split_report["dice_od"] >= 0.955, test_split_report
    assert test_split_report["dice_oc"] >= 0.88, test_split_report
    assert test_split_report["vcdr_abs_error"] <= 0.065, test_split_report


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 2's minimum: OD 0.961 and OC 0.888 reach it, but the vCDR MAE "
                   "of 0.062 is above 0.06; see docs/model-card.md")
def test_default_weights_meet_the_minimum_on_the_drishti_test_split(test_split_report):
    assert test_split_report["dice_od"] >= 0.96, test_split_report
    assert test_split_report["dice_oc"] >= 0.88, test_split_report
    assert test_split_report["vcdr_abs_error"] <= 0.06, test_split_report
