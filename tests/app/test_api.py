"""The HTTP contract with a fake engine: exact bodies, one error shape, the disclaimer everywhere, the API key."""

from __future__ import annotations

import asyncio
import io
import logging

import numpy as np
import pytest
from PIL import Image

from app.errors import OverloadedError
from app.settings import DISCLAIMER
from models.labels import NIH_LABELS
from tests.app.fakes import FIXED_PROBS, FakePredictor, client_for
from tests.conftest import FIXTURES

XRAY = (FIXTURES / "00000075_000.png").read_bytes()


def png_bytes(width: int, height: int, value: int = 100) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), value).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(data: bytes = XRAY, name: str = "x.png") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, "application/octet-stream")}


def assert_error(response: object, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"detail", "code"}
    assert body["code"] == code
    assert response.headers["x-disclaimer"] == DISCLAIMER  # type: ignore[attr-defined]
    return body  # type: ignore[no-any-return]


def test_predict_returns_the_engines_probabilities_in_order() -> None:
    engine = FakePredictor()
    with client_for(engine) as client:
        response = client.post("/predict", files=upload())
    assert response.status_code == 200
    assert response.headers["x-disclaimer"].startswith("Research use only")
    body = response.json()
    assert list(body["probabilities"]) == list(NIH_LABELS)
    assert list(body["probabilities"].values()) == [float(p) for p in FIXED_PROBS]
    assert body["model"] == {"name": "fake", "version": "0.0.0", "sha256": "ab" * 32}
    assert body["input"] == {"format": "png", "width": 64, "height": 64, "steps": []}
    assert engine.tensors[-1].shape == (3, 64, 64)


def test_format_is_read_from_bytes_not_the_name() -> None:
    jpeg = io.BytesIO()
    Image.new("L", (80, 80), 90).save(jpeg, format="JPEG")
    with client_for(FakePredictor()) as client:
        response = client.post("/predict", files=upload(jpeg.getvalue(), name="scan.png"))
        assert response.json()["input"]["format"] == "jpeg"
        assert_error(client.post("/predict", files=upload(b"%PDF-1.7 ...", name="x.png")), 415, "unsupported_format")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_image"),
        (XRAY[: len(XRAY) // 2], "invalid_image"),
        (png_bytes(32, 32), "image_too_small"),
        (png_bytes(1000, 100), "extreme_aspect_ratio"),
    ],
)
def test_bad_images_are_422(data: bytes, code: str) -> None:
    with client_for(FakePredictor()) as client:
        assert_error(client.post("/predict", files=upload(data)), 422, code)


def test_pixel_cap_is_configurable() -> None:
    with client_for(FakePredictor(), max_pixels=100 * 100) as client:
        assert_error(client.post("/predict", files=upload(png_bytes(200, 200))), 422, "decompression_bomb")
        assert client.post("/predict", files=upload(png_bytes(100, 100))).status_code == 200


def test_missing_file_field() -> None:
    with client_for(FakePredictor()) as client:
        body = assert_error(client.post("/predict", data={}, files={}), 422, "validation_error")
    assert body["detail"] == "'file' is required (multipart/form-data upload)"


def test_a_part_under_another_name_is_named_with_the_one_expected() -> None:
    with client_for(FakePredictor()) as client:
        image = assert_error(client.post("/predict", files={"image": ("x.png", b"\x89PNG")}), 422, "wrong_part")
        text = assert_error(client.post("/gradcam", data={"other": "x"}), 422, "wrong_part")
        odd = assert_error(client.post("/predict", data={"a<b>": "x"}), 422, "wrong_part")
    assert image["detail"] == (
        "the form has no part named 'file', but one named 'image': send the X-ray as the part named 'file' "
        "(for example: curl -F file=@xray.png ...)"
    )
    assert text["detail"].startswith("the form has no part named 'file', but one named 'other': ")
    assert odd["detail"].startswith("the form has no part named 'file', but one named (a name with other characters)")


def test_upload_limit_413_by_length_and_while_streaming() -> None:
    with client_for(FakePredictor(), max_upload_bytes=64 * 1024) as client:
        assert_error(client.post("/predict", files=upload(b"\0" * (65 * 1024))), 413, "payload_too_large")

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(100):
                yield b"\0" * 4096

        response = client.post(
            "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
        )
        assert_error(response, 413, "payload_too_large")
        assert client.post("/predict", files=upload()).status_code == 200


def test_overload_is_503_with_retry_after() -> None:
    with client_for(FakePredictor(error=OverloadedError())) as client:
        response = client.post("/predict", files=upload())
    assert_error(response, 503, "overloaded")
    assert response.headers["retry-after"] == "1"


def test_full_queue_is_refused_before_decoding() -> None:
    engine = FakePredictor()
    with client_for(engine, queue_size=8) as client:
        engine.depth = 8
        calls = len(engine.tensors)
        response = client.post("/predict", files=upload(b"\x89PNG\r\n\x1a\n corrupt, but never decoded"))
        assert_error(response, 503, "overloaded")
        assert len(engine.tensors) == calls


def test_internal_errors_are_generic(caplog: pytest.LogCaptureFixture) -> None:
    secret = "/home/alice/patient-John-Doe.png"
    with caplog.at_level(logging.ERROR), client_for(FakePredictor(error=RuntimeError(secret))) as client:
        response = client.post("/predict", files=upload(name="patient-John-Doe.png"))
    body = assert_error(response, 500, "internal_error")
    assert body["detail"] == "internal server error"
    assert secret not in response.text and "John" not in caplog.text
    assert "Traceback" not in response.text


def test_not_ready_until_warm_up_finishes() -> None:
    gate = asyncio.Event()
    with client_for(FakePredictor(gate=gate)) as client:
        response = client.get("/readyz")
        assert_error(response, 503, "not_ready")
        assert response.headers["retry-after"] == "1"
        assert client.get("/healthz").json() == {"status": "ok"}
        assert_error(client.post("/predict", files=upload()), 503, "not_ready")
        client.portal.call(gate.set)  # type: ignore[union-attr]
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
        assert client.get("/readyz").json() == {"status": "ready"}


def test_disclaimer_on_every_route_and_error() -> None:
    with client_for(FakePredictor()) as client:
        responses = [
            client.get("/healthz"), client.get("/readyz"), client.get("/docs"), client.get("/openapi.json"),
            client.get("/model"), client.get("/metrics"), client.get("/missing"), client.delete("/predict"),
            client.post("/predict", files=upload()), client.post("/gradcam", files=upload()),
        ]  # fmt: skip
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 200, 404, 405, 200, 200]
    assert all(r.headers["x-disclaimer"] == DISCLAIMER for r in responses)


def test_docs_carry_the_disclaimer_and_examples() -> None:
    with client_for(FakePredictor()) as client:
        spec = client.get("/openapi.json").json()
    assert DISCLAIMER in spec["info"]["description"]
    assert {"/predict", "/gradcam", "/model", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert spec["paths"]["/predict"]["post"]["summary"] == "Predict Image"
    example = spec["components"]["schemas"]["PredictResponse"]["properties"]["probabilities"]["examples"][0]
    assert set(example) == set(NIH_LABELS)


def test_api_key_guards_model_routes_only() -> None:
    with client_for(FakePredictor(), api_key="s3cret-key") as client:
        for response in (
            client.post("/predict", files=upload()), client.post("/gradcam", files=upload()),
            client.get("/model"), client.get("/metrics"),
            client.post("/predict", files=upload(), headers={"X-API-Key": "wrong"}),
        ):  # fmt: skip
            assert_error(response, 401, "unauthorized")
            assert "s3cret" not in response.text
            assert response.headers["www-authenticate"] == "APIKey"
            assert response.headers["connection"] == "close"  # no body is waited for
        good = {"X-API-Key": "s3cret-key"}
        assert client.post("/predict", files=upload(), headers=good).status_code == 200
        assert client.get("/model", headers=good).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/docs").status_code == 200


def test_api_key_is_checked_before_the_body_is_read() -> None:
    with client_for(FakePredictor(), api_key="k", max_upload_bytes=1024) as client:
        # over the upload limit and without a key: the key check answers first, nothing is parsed or spooled
        assert_error(client.post("/predict", files=upload(b"\0" * 4096)), 401, "unauthorized")
        assert_error(client.post("/predict", files=upload(b"\0" * 4096), headers={"X-API-Key": "k"}), 413,
                     "payload_too_large")  # fmt: skip


def test_model_card() -> None:
    with client_for(FakePredictor()) as client:
        card = client.get("/model").json()
    assert card["labels"] == list(NIH_LABELS)
    assert card["sha256"] == "ab" * 32
    assert card["device"] == "cpu"
    assert card["preprocessing"]["image_size"] == 64
    assert card["training"] == {"provenance": {"command": "fake"}, "config": {"epochs": 1}}
    assert card["metrics"] == {"val_mean_auroc": 0.5}


def test_metrics_count_requests_by_route_and_scores() -> None:
    with client_for(FakePredictor()) as client:
        client.post("/predict", files=upload())
        client.post("/predict", files=upload(b"junk"))
        client.get("/no/such/path")
        client.post("/gradcam", files=upload(b"\0" * (21 * 1024 * 1024)))  # refused by admission, before routing
        text = client.get("/metrics").text
    assert 'chexnet_requests_total{route="/gradcam",status="413"} 1.0' in text
    assert 'chexnet_requests_total{route="/predict",status="200"} 1.0' in text
    assert 'chexnet_requests_total{route="/predict",status="415"} 1.0' in text
    assert 'chexnet_requests_total{route="unmatched",status="404"} 1.0' in text
    assert "chexnet_queue_depth 3.0" in text
    assert 'chexnet_score_count{pathology="Hernia"} 1.0' in text
    assert "/no/such/path" not in text


def test_gradcam_png_defaults_to_the_most_probable_class() -> None:
    with client_for(FakePredictor()) as client:
        response = client.post("/gradcam", files=upload())
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-pathology"] == "Hernia"
    assert response.headers["x-probability"] == f"{FIXED_PROBS[13]:.6f}"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_gradcam_json_and_all_and_unknown() -> None:
    with client_for(FakePredictor()) as client:
        body = client.post("/gradcam?format=json&pathology=Effusion", files=upload()).json()
        assert body["pathology"] == "Effusion"
        assert body["probability"] == pytest.approx(0.03)
        heatmap = np.array(body["heatmap"])
        assert heatmap.shape == (8, 8) and heatmap.min() == 0.0 and heatmap.max() == 1.0
        everything = client.post("/gradcam?format=json&pathology=all", files=upload()).json()
        assert list(everything["heatmaps"]) == list(NIH_LABELS)
        panels = client.post("/gradcam?pathology=all", files=upload())
        assert panels.headers["x-pathology"] == "all"
        with Image.open(io.BytesIO(panels.content)) as image:
            assert image.width == 4 * 320
        assert_error(client.post("/gradcam?format=bmp", files=upload()), 422, "validation_error")


@pytest.mark.parametrize(
    ("query", "expected"),
    [("mass", "Mass"), ("Pleural%20Thickening", "Pleural_Thickening"), ("pleural_thickening", "Pleural_Thickening"),
     ("ALL", "all"), ("Effusion", "Effusion")],
)  # fmt: skip
def test_gradcam_pathology_ignores_case_spaces_and_underscores(query: str, expected: str) -> None:
    with client_for(FakePredictor()) as client:
        response = client.post(f"/gradcam?pathology={query}", files=upload())
    assert response.status_code == 200, response.text
    assert response.headers["x-pathology"] == expected


def test_unknown_pathology_lists_the_names_and_suggests_one() -> None:
    names = ", ".join(NIH_LABELS)
    with client_for(FakePredictor()) as client:
        typo = assert_error(client.post("/gradcam?pathology=Pneumonnia", files=upload()), 422, "unknown_pathology")
        other = assert_error(client.post("/gradcam?pathology=Fracture", files=upload()), 422, "unknown_pathology")
    assert typo["detail"] == (
        f"unknown pathology; did you mean 'Pneumonia'? use one of this model's 14 labels ({names}; case, "
        "spaces and underscores do not matter) or 'all'"
    )
    assert other["detail"] == (
        f"unknown pathology; use one of this model's 14 labels ({names}; case, spaces and underscores do not "
        "matter) or 'all'"
    )


def test_out_of_memory_while_decoding_is_503_and_the_service_keeps_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.inference.decode

    real_decode = app.inference.decode.decode_image
    calls = {"n": 0}

    def decode_once_out_of_memory(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError
        return real_decode(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(app.inference.decode, "decode_image", decode_once_out_of_memory)
    with client_for(FakePredictor()) as client:
        response = client.post("/predict", files=upload())
        body = assert_error(response, 503, "out_of_memory")
        assert response.headers["retry-after"] == "1"
        assert "MemoryError" not in body["detail"]
        assert client.post("/predict", files=upload()).status_code == 200


def test_out_of_memory_in_the_model_is_503() -> None:
    with client_for(FakePredictor(error=MemoryError())) as client:
        assert_error(client.post("/predict", files=upload()), 503, "out_of_memory")
