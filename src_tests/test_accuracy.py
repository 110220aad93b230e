"""The shipped weights on the 51 Drishti-GS1 test images (runs where ../shared has the dataset)."""

import pytest


@pytest.fixture(scope="module")
def test_split_report(drishti):
    from napari_attunet.evaluation import evaluate

    report = evaluate(drishti, split="test", device="cpu")
    assert report["summary"]["images"] == 51
    return report


@pytest.mark.slow
def test_default_weights_meet_the_minimum_on_the_drishti_test_split(test_split_report):
    # The accuracy required of the default weights.  Measured: OD 0.961, OC 0.889, vCDR MAE 0.054
    # (docs/model-card.md).
    summary = test_split_report["summary"]
    assert summary["discs_not_found"] == 0
    assert summary["dice_od"] >= 0.96, summary
    assert summary["dice_oc"] >= 0.88, summary
    assert summary["vcdr_abs_error"] <= 0.06, summary


@pytest.mark.slow
def test_evaluation_uses_the_thresholds_stored_with_the_weights(test_split_report):
    from napari_attunet.weights import stored_thresholds

    provenance = test_split_report["provenance"]
    stored = stored_thresholds()
    assert (provenance["disc_threshold"], provenance["cup_threshold"]) == stored
