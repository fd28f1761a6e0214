"""/predict's findings at an operating point, /model's list of points, and the answer of a model without them."""

from __future__ import annotations

import math

import pytest

from app.encoding.findings import NO_OPERATING_POINTS
from models.labels import NIH_LABELS
from tests.app.fakes import FIXED_PROBS, YOUDEN_THRESHOLDS, FakePredictor, client_for, fake_operating_points
from tests.app.test_api import assert_error, upload


def test_a_model_without_operating_points_says_so_instead_of_guessing() -> None:
    engine = FakePredictor()
    with client_for(engine) as client:
        body = client.post("/predict", files=upload()).json()
        asked = client.post("/predict?operating_point=youden", files=upload())
        card = client.get("/model").json()
    assert body["findings"] is None and body["operating_point"] is None
    assert body["note"] == NO_OPERATING_POINTS
    assert "not 0.5 either" in body["note"]
    assert list(body["probabilities"].values()) == [float(p) for p in FIXED_PROBS]
    error = assert_error(asked, 422, "unknown_operating_point")
    assert error["detail"] == "this model has no operating points; leave operating_point out"
    assert card["operating_points"] is None


def test_findings_at_the_default_point() -> None:
    with client_for(FakePredictor(operating_points=fake_operating_points())) as client:
        body = client.post("/predict", files=upload()).json()
    assert body["note"] is None
    assert body["operating_point"] == {
        "name": "youden",
        "description": "maximises J",
        "chosen_on": "labels.csv, the images in val_list.txt",  # the path in the stored description: its name
        "temperature": None,
        "available": ["youden", "spec90"],
    }
    assert list(body["findings"]) == list(NIH_LABELS)
    expected = {
        name: {
            "probability": float(FIXED_PROBS[k]),  # no temperature: the same number as `probabilities`
            "threshold": YOUDEN_THRESHOLDS[name],
            "above": k == 2 or k >= 7,  # Effusion sits exactly on its threshold; 0.08 ... 0.14 are >= 0.075
            "unreliable": name == "Hernia",
        }
        for k, name in enumerate(NIH_LABELS)
    }
    assert body["findings"] == expected
    assert list(body["probabilities"].values()) == [float(p) for p in FIXED_PROBS]


def test_another_point_by_name_and_an_unknown_one_before_the_upload_is_decoded() -> None:
    engine = FakePredictor(operating_points=fake_operating_points())
    with client_for(engine) as client:
        body = client.post("/predict?operating_point=spec90", files=upload()).json()
        computed = len(engine.tensors)
        unknown = client.post("/predict?operating_point=spec95", files=upload())
        assert len(engine.tensors) == computed  # refused before decoding or queueing
    assert body["operating_point"]["name"] == "spec90"
    assert [f["above"] for f in body["findings"].values()] == [False] * 12 + [True] * 2  # 0.13, 0.14 >= 0.125
    assert {f["threshold"] for f in body["findings"].values()} == {0.125}
    error = assert_error(unknown, 422, "unknown_operating_point")
    assert error["detail"] == (
        "unknown operating point; did you mean 'spec90'? operating_point must be one of this model's operating "
        "points: youden, spec90"
    )


@pytest.mark.parametrize(("asked", "used"), [("Youden", "youden"), ("SPEC90", "spec90"), ("", "youden")])
def test_point_names_match_as_pathology_names_do_and_empty_means_the_default(asked: str, used: str) -> None:
    with client_for(FakePredictor(operating_points=fake_operating_points())) as client:
        body = client.post(f"/predict?operating_point={asked}", files=upload()).json()
    assert body["operating_point"]["name"] == used


def test_a_temperature_is_applied_before_the_thresholds_and_probabilities_stay_raw() -> None:
    with client_for(FakePredictor(operating_points=fake_operating_points(temperature=2.0))) as client:
        body = client.post("/predict", files=upload()).json()
    assert body["operating_point"]["temperature"] == 2.0
    assert list(body["probabilities"].values()) == [float(p) for p in FIXED_PROBS]
    for k, (name, finding) in enumerate(body["findings"].items()):
        p = float(FIXED_PROBS[k])
        calibrated = 1 / (1 + math.sqrt((1 - p) / p))  # sigmoid(logit(p) / 2)
        assert finding["probability"] == pytest.approx(calibrated, rel=1e-9)
        assert finding["above"] == (finding["probability"] >= YOUDEN_THRESHOLDS[name])
    # raw 0.01 is below 0.075, but calibrated (0.0913) it is above: the threshold applies after T
    assert body["findings"]["Atelectasis"]["above"] is True


def test_model_card_lists_the_points_with_the_data_they_were_chosen_on() -> None:
    points = fake_operating_points()
    with client_for(FakePredictor(operating_points=points)) as client:
        card = client.get("/model").json()
    listed = card["operating_points"]
    assert listed["default"] == "youden" and listed["unreliable"] == ["Hernia"] and listed["temperature"] is None
    assert listed["source"] == {"data": "labels.csv, the images in val_list.txt", "images": 50}
    assert listed["points"] == points.to_dict()["points"]
    assert listed["points"]["youden"]["thresholds"]["Atelectasis"] == {
        "threshold": 0.075, "sensitivity": 0.8, "specificity": 0.7, "ppv": 0.2, "npv": 0.95
    }  # fmt: skip


def test_the_openapi_document_describes_findings_and_the_query() -> None:
    with client_for(FakePredictor()) as client:
        spec = client.get("/openapi.json").json()
    parameters = spec["paths"]["/predict"]["post"]["parameters"]
    assert [p["name"] for p in parameters] == ["operating_point"]
    finding = spec["components"]["schemas"]["Finding"]
    assert set(finding["properties"]) == {"probability", "threshold", "above", "unreliable"}
    assert set(finding["required"]) == {"probability", "threshold", "above", "unreliable"}
    predict = spec["components"]["schemas"]["PredictResponse"]
    assert {"findings", "operating_point", "note"} <= set(predict["required"])
