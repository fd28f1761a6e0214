"""The OpenAPI document says exactly what the service does: key only when configured, the model's own labels,
an empty file invalid, every status per operation, and the address it was loaded from."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.main import create_app
from app.settings import Settings
from tests.app.fakes import FakePredictor, client_for, fake_operating_points
from tests.app.test_api import upload

OTHER_LABELS = tuple(f"Finding {i}" for i in range(14))  # a model with other labels than NIH's


def document(**settings: Any) -> dict[str, Any]:
    predictor = FakePredictor(operating_points=fake_operating_points())
    predictor.info = dataclasses.replace(predictor.info, labels=OTHER_LABELS)
    result: dict[str, Any] = create_app(Settings(**settings), predictor).openapi()
    return result


def statuses(doc: dict[str, Any]) -> dict[str, list[int]]:
    return {
        f"{method.upper()} {path}": sorted(int(s) for s in op["responses"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def test_the_key_scheme_and_401_appear_only_when_a_key_is_configured() -> None:
    bare, keyed = document(), document(api_key="k")
    assert "securitySchemes" not in bare["components"]
    upload_statuses = [200, 400, 408, 413, 415, 422, 500, 503]
    assert statuses(bare) == {
        "GET /healthz": [200, 422], "GET /readyz": [200, 422, 503], "POST /predict": upload_statuses,
        "POST /gradcam": upload_statuses, "GET /model": [200, 422], "GET /metrics": [200, 422],
    }  # fmt: skip
    keyed_upload = sorted([*upload_statuses, 401])
    assert statuses(keyed) == {
        "GET /healthz": [200, 422], "GET /readyz": [200, 422, 503], "POST /predict": keyed_upload,
        "POST /gradcam": keyed_upload, "GET /model": [200, 401, 422], "GET /metrics": [200, 401, 422],
    }  # fmt: skip
    secured = sorted(p for p, ops in keyed["paths"].items() for op in ops.values() if "security" in op)
    assert secured == ["/gradcam", "/metrics", "/model", "/predict"]
    assert "x-guards" not in str(keyed)


def test_pathology_and_operating_point_are_the_models_own_names() -> None:
    params = {p["name"]: p["schema"] for p in document()["paths"]["/gradcam"]["post"]["parameters"]}
    assert params["pathology"]["enum"] == [*OTHER_LABELS, "all"]
    points = {p["name"]: p["schema"] for p in document()["paths"]["/predict"]["post"]["parameters"]}
    assert points["operating_point"]["enum"] == ["youden", "spec90"]


def test_an_empty_file_is_declared_invalid() -> None:
    schemas = document()["components"]["schemas"]
    for name in ("Body_predict_image_predict_post", "Body_explain_image_gradcam_post"):
        file = schemas[name]["properties"]["file"]
        assert (file["type"], file["format"], file["minLength"]) == ("string", "binary", 1)
    assert "HTTPValidationError" not in schemas


def test_the_served_document_names_the_address_it_was_loaded_from() -> None:
    with client_for(FakePredictor()) as client:
        served = client.get("/openapi.json", headers={"host": "xray.example:9123"}).json()
        odd = client.get("/openapi.json", headers={"host": "<script>"}).json()
    assert served["servers"] == [{"url": "http://xray.example:9123"}]
    assert "curl -F file=@xray.png http://xray.example:9123/predict" in served["info"]["description"]
    assert "<script>" not in str(odd)


def test_a_model_with_other_labels_answers_with_them() -> None:
    predictor = FakePredictor()
    predictor.info = dataclasses.replace(predictor.info, labels=OTHER_LABELS)
    with client_for(predictor) as client:
        card = client.get("/model").json()
        probabilities = client.post("/predict", files=upload()).json()["probabilities"]
        explained = client.post("/gradcam?pathology=finding_3&format=json", files=upload()).json()
    assert card["labels"] == list(OTHER_LABELS)
    assert list(probabilities) == list(OTHER_LABELS)
    assert explained["pathology"] == "Finding 3"


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in references(value)]
    return []


def test_every_reference_resolves_inside_the_document_and_no_local_defs_remain() -> None:
    # ReDoc refuses a whole document over one "#/$defs/..." reference (pydantic's, from an inline response schema).
    doc = document(api_key="k")
    assert "$defs" not in str(doc)
    refs = references(doc)
    assert "#/components/schemas/BoxRuleRef" in refs  # the /gradcam JSON answer's nested model, moved
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


def test_the_examples_name_the_served_models_labels_and_no_others() -> None:
    import json

    from models.labels import NIH_LABELS

    doc = document()
    schemas = doc["components"]["schemas"]
    assert list(schemas["PredictResponse"]["properties"]["probabilities"]["examples"][0]) == list(OTHER_LABELS)
    assert schemas["ModelCard"]["properties"]["labels"]["examples"] == [list(OTHER_LABELS)]
    text = json.dumps(doc)
    assert not [label for label in NIH_LABELS if label in text]
