"""app.uploads and the validation handler: one file part named ``file``, and no framework text in any answer."""

from __future__ import annotations

import pytest

from app.errors import BAD_FORM_MESSAGE, MULTIPLE_FILES_MESSAGE
from tests.app.fakes import FakePredictor, client_for
from tests.app.test_api import XRAY, assert_error, upload

FRAMEWORK_WORDS = ("UploadFile", "<class", "Value error", "Expected", "pydantic", "Traceback", "str'")


@pytest.mark.parametrize("route", ["/predict", "/gradcam"])
@pytest.mark.parametrize("names", [("file", "file"), ("file", "other"), ("file",) * 5])
def test_more_than_one_file_part_is_refused_not_half_answered(route: str, names: tuple[str, ...]) -> None:
    engine = FakePredictor()
    with client_for(engine) as client:
        response = client.post(route, files=[(name, (f"{i}.png", XRAY, "image/png")) for i, name in enumerate(names)])
    body = assert_error(response, 422, "multiple_files")
    assert body["detail"] == MULTIPLE_FILES_MESSAGE  # the form parser stops at the second file (FORM_LIMITS)
    assert len(engine.tensors) == 1  # the warm-up only: nothing was predicted


def test_a_text_part_beside_the_file_with_the_same_name_is_refused() -> None:
    with client_for(FakePredictor()) as client:
        response = client.post("/predict", files=[("file", ("a.png", XRAY, "image/png")), ("file", (None, b"x"))])
    body = assert_error(response, 422, "multiple_files")
    assert body["detail"] == "Send one X-ray per request: the form has 2 parts named 'file'."


def test_many_text_fields_are_refused_by_the_form_limits() -> None:
    with client_for(FakePredictor()) as client:
        fields = [(f"f{i}", (None, b"x")) for i in range(5)]
        response = client.post("/predict", files=[("file", ("a.png", XRAY, "image/png")), *fields])
    body = assert_error(response, 400, "bad_request")
    assert body["detail"] == BAD_FORM_MESSAGE


@pytest.mark.parametrize("media_type", ["MULTIPART/FORM-DATA", "Multipart/Form-Data", " multipart/form-data"])
def test_the_media_type_is_matched_without_regard_to_case(media_type: str) -> None:
    body = b"".join(
        b'--b0\r\nContent-Disposition: form-data; name="file"; filename="%d.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" % i + XRAY + b"\r\n"
        for i in range(2)
    )
    with client_for(FakePredictor()) as client:
        response = client.post(
            "/predict", content=body + b"--b0--\r\n", headers={"content-type": f"{media_type}; boundary=b0"}
        )
    assert_error(response, 422, "multiple_files")


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"files": {"file": (None, b"xray.png")}}, "multipart text part"),
        ({"files": {"file": (None, b"\x89PNG" + b"\0" * (1024 * 1024))}}, "a 1 MiB text part (curl -F file=<x.png)"),
        ({"data": {"file": "xray.png"}}, "urlencoded form"),
    ],
)
def test_file_sent_as_text_gets_a_message_for_a_person(kwargs: dict[str, object], why: str) -> None:
    with client_for(FakePredictor()) as client:
        response = client.post("/predict", **kwargs)  # type: ignore[arg-type]
    body = assert_error(response, 422, "not_a_file")
    assert body["detail"].startswith("'file' must be a file upload"), why
    assert "curl -F file=@xray.png" in body["detail"]


def test_no_framework_text_in_any_detail() -> None:
    requests: list[tuple[str, dict[str, object]]] = [
        ("/predict", {"files": {"file": (None, b"text")}}),
        ("/predict", {"data": {"file": "text"}}),
        ("/predict", {"files": {"other": ("a.png", XRAY, "image/png")}}),
        ("/predict", {"content": b"{}", "headers": {"content-type": "application/json"}}),
        ("/predict", {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}}),
        ("/gradcam?format=svg", {"files": {"file": ("a.png", XRAY, "image/png")}}),
        ("/gradcam?pathology=Flu", {"files": {"file": ("a.png", XRAY, "image/png")}}),
        ("/predict", {"files": {"file": ("a.txt", b"hello", "text/plain")}}),
    ]
    with client_for(FakePredictor()) as client:
        for path, kwargs in requests:
            response = client.post(path, **kwargs)  # type: ignore[arg-type]
            assert 400 <= response.status_code < 500, (path, response.status_code)
            detail = response.json()["detail"]
            assert isinstance(detail, str) and detail
            assert not any(word in detail for word in FRAMEWORK_WORDS), (path, detail)


def test_the_form_limits_still_hold_for_real_text_fields() -> None:
    with client_for(FakePredictor()) as client:
        files = {"file": ("a.png", XRAY, "image/png"), "note": (None, b"x" * (17 * 1024))}
        body = assert_error(client.post("/predict", files=files), 400, "bad_request")
    assert body["detail"].startswith("The request body is not a multipart form this service accepts")


def test_unknown_query_parameters_are_named_with_the_accepted_ones() -> None:
    with client_for(FakePredictor()) as client:
        mass = assert_error(client.post("/predict?pathology=Mass", files=upload()), 422, "unknown_query_parameter")
        probe = assert_error(client.get("/healthz?verbose=1&x<y=2"), 422, "unknown_query_parameter")
        fine = client.post("/gradcam?pathology=Mass&format=json", files=upload())
    assert mass["detail"] == "unknown query parameter 'pathology'; this route accepts operating_point"
    assert probe["detail"] == (
        "unknown query parameter 'verbose', (a name with other characters); this route takes no query parameters"
    )
    assert fine.status_code == 200
