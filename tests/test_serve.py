"""The web app's API, in process (FastAPI's TestClient), on the real tiny runs from conftest.

Predictions must agree exactly with `Classifier.predict`, and numbers read from photos with `Classifier.read`,
boxes where the photo's digits are; every bad request must get its own status and a JSON explanation, and the
server must go on answering good requests after each one. (The real server refusing a large body: test_serve_start.py.)
"""

import asyncio
import io
import json
import os
import struct
import warnings
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistlab.errors import MnistlabError
from mnistlab.evaluate import EVALUATOR
from mnistlab.inference import load
from mnistlab.photo.frame import MAX_PIXELS, load_image, to_mnist
from mnistlab.photo.read import read_number
from mnistlab.photo.synth import make_photos
from mnistlab.serve.middleware import MAX_UPLOAD

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx is what we have
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mnistlab.serve.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(cnn_run, gan_run):
    with TestClient(create_app(cnn_run.dir, gan_run.dir)) as client:
        yield client


@pytest.fixture(scope="module")
def classifier(cnn_run):
    return load(cnn_run.dir, kind="cnn", precision="fp32")  # as the app loads it


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=format, **options)
    return buf.getvalue()


def png(image) -> bytes:
    return encoded(image if isinstance(image, Image.Image) else Image.fromarray(image), "PNG")


def drawn_one(dark_on_light: bool = True) -> Image.Image:
    """A thick, slightly slanted "1", drawn as a person would on a 200x200 canvas."""
    paper, ink = (255, 0) if dark_on_light else (0, 255)
    image = Image.new("L", (200, 200), paper)
    ImageDraw.Draw(image).line([(110, 30), (95, 170)], fill=ink, width=18)
    return image


def upload(data: bytes) -> dict:
    """httpx arguments posting `data` as the multipart field `file`."""
    return {"files": {"file": ("digit.png", data, "image/png")}}


def photo_jpeg(image: np.ndarray, noise: float = 0) -> bytes:
    """A generated photo's pixels as a camera's JPEG; `noise`, the sensor's, in grey levels, makes it as large."""
    pixels = image + np.random.default_rng(0).normal(0, noise, image.shape) if noise else image
    return encoded(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "JPEG", quality=95)


def iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def predict_png(client, data: bytes, abstain: bool = True):
    return client.post("/api/predict", **upload(data), params={} if abstain else {"abstain": "false"})


def explained(answer) -> str:
    """The answer's `detail` as one line: a string as it is, FastAPI's validation errors as "loc: msg; ..."."""
    detail = answer.json()["detail"]
    if isinstance(detail, str):
        return detail
    return "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in detail)


def assert_still_serving(client):
    answer = predict_png(client, png(drawn_one()))
    assert answer.status_code == 200 and len(answer.json()["probabilities"]) == 10


# ----------------------------------------------------------------------------------------------
# Reading digits


def test_predictions_on_real_test_digits_agree_exactly_with_the_classifier(client, classifier, tiny_data):
    digits = tiny_data.test.images.numpy()[:60]
    labels = tiny_data.test.labels.numpy()[:60]
    expected = classifier.predict(list(digits))
    right = [i for i, r in enumerate(expected) if r["digit"] == labels[i]][:6]
    assert len(right) == 6  # the fixture CNN reads most real digits

    for i in right:
        expected_one = classifier.predict([digits[i]])[0]  # alone, as the API ran it (batching moves 1e-6s)
        by_file = predict_png(client, png(digits[i]))
        by_pixels = client.post("/api/predict/pixels", json={"pixels": digits[i].tolist()})
        by_pixels_at_the_old_address = client.post("/api/predict", json={"pixels": digits[i].tolist()})
        for answer in (by_file, by_pixels, by_pixels_at_the_old_address):
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["digit"] == labels[i] and body["label"] == str(labels[i])
            assert body["probabilities"] == expected_one["probabilities"]
            np.testing.assert_allclose(body["image"], expected_one["image"], atol=5e-4)


def test_concurrent_predictions_share_batches_and_each_gets_its_own_answer(cnn_run, classifier, tiny_data,
                                                                            monkeypatch):
    import mnistlab.photo.frame
    import mnistlab.serve.batching as batching

    batch_sizes = []
    real_batch = batching._predict_batch

    def predict_batch(model, images):
        batch_sizes.append(len(images))
        return real_batch(model, images)

    monkeypatch.setattr(batching, "_predict_batch", predict_batch)
    real_to_mnist = mnistlab.photo.frame.to_mnist
    marked = np.float32(1 / 255)  # an image that preprocessing refuses: pixel (0, 0) = 1

    def to_mnist(image):
        if isinstance(image, np.ndarray) and image[0, 0] == marked:
            raise MnistlabError("refused")
        return real_to_mnist(image)

    monkeypatch.setattr(mnistlab.photo.frame, "to_mnist", to_mnist)
    digits = tiny_data.test.images.numpy()[:24].copy()
    digits[5, 0, 0] = 1

    async def send_all(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return await asyncio.gather(*(client.post("/api/predict/pixels", json={"pixels": d.tolist()})
                                          for d in digits))

    answers = asyncio.run(send_all(create_app(cnn_run.dir, None)))
    assert max(batch_sizes) > 1  # batched
    assert sum(batch_sizes) > len(digits)  # and, after the refusal, that batch again image by image
    assert answers[5].status_code == 400 and answers[5].json()["detail"] == "refused"  # its own request only
    for i, answer in enumerate(answers):
        if i != 5:
            expected = classifier.predict([digits[i]])[0]
            assert answer.status_code == 200 and answer.json()["digit"] == expected["digit"]
            np.testing.assert_allclose(answer.json()["probabilities"], expected["probabilities"], atol=1e-5)
            np.testing.assert_allclose(answer.json()["image"], expected["image"], atol=5e-4)  # its own image


def test_a_drawn_digit_is_normalised_as_mnist_was_whatever_its_polarity(client):
    answers = [predict_png(client, png(drawn_one(dark)), abstain=False).json() for dark in (True, False)]
    for body in answers:
        assert set(body) == {"digit", "label", "probabilities", "digitness", "reason", "image"}
        assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert body["digit"] == int(np.argmax(body["probabilities"]))
        image = np.array(body["image"])
        assert image.shape == (28, 28) and image.min() >= 0 and image.max() == 1  # light ink on black
        np.testing.assert_allclose(image, to_mnist(drawn_one()), atol=5e-4)  # what the model saw
    assert answers[0] == answers[1]  # dark on light and light on dark read the same


def test_a_square_or_a_blank_canvas_is_not_a_digit_unless_the_caller_asks_for_the_likeliest(client):
    square, blank = np.zeros((28, 28)), np.zeros((28, 28))
    square[4:24, 4:24] = 255  # the fixture CNN names a digit for it at p > 0.9
    for pixels in (square, blank):
        refused = client.post("/api/predict/pixels", json={"pixels": pixels.tolist()}).json()
        assert refused["digit"] is None and refused["label"] is None and refused["reason"] == "not a digit"
        assert 0 <= refused["digitness"] < 0.005 and len(refused["probabilities"]) == 10
        named = client.post("/api/predict/pixels", json={"pixels": pixels.tolist()}, params={"abstain": "false"})
        named = named.json()
        assert named["digit"] == int(np.argmax(named["probabilities"])) and named["reason"] is None
        assert named["probabilities"] == refused["probabilities"] and named["digitness"] == refused["digitness"]


def unusual_uploads() -> dict[str, bytes]:
    """drawn_one() as files whose images decode to modes other than L and RGB."""
    one = drawn_one()
    neutral = Image.new("L", one.size, 128)
    transparent_paper = one.copy()
    transparent_paper.putalpha(Image.eval(one, lambda v: 255 - v))  # ink opaque, paper see-through
    return {
        "CMYK JPEG": encoded(one.convert("CMYK"), "JPEG", quality=95),
        "CIELAB TIFF": encoded(Image.merge("LAB", (one, neutral, neutral)), "TIFF"),
        "16-bit PNG": png(np.asarray(one, np.uint16) * 257),
        "palette PNG, transparent paper": encoded(one.convert("P"), "PNG", transparency=255),
        "grey and alpha PNG": encoded(transparent_paper, "PNG"),
    }


@pytest.mark.parametrize("case", unusual_uploads())
def test_uploads_in_unusual_image_modes_read_as_the_plain_image(client, case):
    answer = predict_png(client, unusual_uploads()[case])
    assert answer.status_code == 200, answer.text
    assert np.abs(np.array(answer.json()["image"]) - to_mnist(drawn_one())).mean() < 0.01


def test_pixels_may_be_0_to_255_or_0_to_1(client):
    canvas = np.asarray(drawn_one(dark_on_light=False).resize((28, 28), Image.BOX), dtype=np.float64)
    as_bytes = client.post("/api/predict/pixels", json={"pixels": canvas.tolist()}).json()
    as_fractions = client.post("/api/predict/pixels", json={"pixels": (canvas / 255).tolist()}).json()
    assert as_bytes["digit"] == as_fractions["digit"]
    np.testing.assert_allclose(as_bytes["probabilities"], as_fractions["probabilities"], atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Reading numbers from photos


@pytest.fixture(scope="module")
def number_photos():
    """A 1-megapixel photo of a 3-digit number, and a 6-megapixel one (a 12-MP phone's JPEG size, 2-5 MB)."""
    small = make_photos(1, seed=1, lengths=(3,), spacing="apart")[0]
    large = make_photos(1, seed=2, lengths=(3,), size=(3000, 2000), spacing="apart", edge="none")[0]
    return {"1 MP": (small, photo_jpeg(small.image)), "6 MP": (large, photo_jpeg(large.image, noise=10))}


@pytest.mark.parametrize("size", ["1 MP", "6 MP"])
def test_read_finds_each_digit_of_a_photo_where_the_photo_has_it(client, classifier, number_photos, size):
    photo, data = number_photos[size]
    answer = client.post("/api/read", files={"file": ("photo.jpg", data, "image/jpeg")}, params={"abstain": "false"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    height, width = photo.image.shape[:2]
    assert (body["width"], body["height"]) == (width, height)
    assert len(body["digits"]) == len(photo.boxes) == 3
    for digit, truth in zip(body["digits"], photo.boxes):
        assert iou(digit["box"], truth) > 0.5, (digit["box"], truth)  # in the photo's own pixels
        assert 0 <= digit["box"][0] < digit["box"][2] <= width and 0 <= digit["box"][1] < digit["box"][3] <= height
        assert digit["digit"] == int(np.argmax(digit["probabilities"]))
        assert sum(digit["probabilities"]) == pytest.approx(1, abs=1e-4)
        image = np.array(digit["image"])
        assert image.shape == (28, 28) and image.min() >= 0 and image.max() > 0.5  # light ink on black
    assert body["text"] == "".join(str(d["digit"]) for d in body["digits"])
    if size == "6 MP":
        assert len(data) > 2 * 2**20  # over the old 1 MB limit, as a phone's photo is
    else:  # not shrunk: exactly what the library reads
        expected = classifier.read([load_image(io.BytesIO(data))], abstain=False)[0]
        assert body["text"] == expected["text"]
        assert [d["box"] for d in body["digits"]] == [d["box"] for d in expected["digits"]]
        assert [d["probabilities"] for d in body["digits"]] == [d["probabilities"] for d in expected["digits"]]
        seen = read_number(load_image(io.BytesIO(data)), classifier.probabilities).digits
        for digit, expected_digit in zip(body["digits"], seen, strict=True):
            np.testing.assert_allclose(digit["image"], expected_digit.image, atol=5e-4)


@pytest.mark.slow
def test_a_large_photo_of_one_digit_is_read_on_predict_too(client, classifier):
    photo = make_photos(1, seed=3, lengths=(1,), size=(3000, 2000))[0]
    data = photo_jpeg(photo.image, noise=10)
    answer = predict_png(client, data, abstain=False)
    assert len(data) > 2**20 and answer.status_code == 200, answer.text
    assert answer.json()["digit"] == int(np.argmax(answer.json()["probabilities"]))


def test_a_photo_without_a_digit_gets_a_clear_answer_not_a_guess(client):
    page = make_photos(1, seed=0, lengths=(3,), size=(2400, 1800), lines="plain", edge="none")[0]
    paper = page.image[: min(box[1] for box in page.boxes) - 20]  # the page above the number
    for data in (photo_jpeg(paper), png(np.full((200, 300), 240, np.uint8))):
        answer = client.post("/api/read", **upload(data))
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith("no digit found in the photo; give a photo or drawing of digits")


# ----------------------------------------------------------------------------------------------
# Bad requests: each gets its status and a JSON "detail" (FastAPI's list of what is wrong where, for a 422),
# and the server goes on


def bomb_png() -> bytes:
    """A valid 28x28 PNG whose header then claims 50000x50000 pixels (2.5 GB decoded), CRC fixed up."""
    data = bytearray(png(np.zeros((28, 28), np.uint8)))
    data[16:24] = struct.pack(">II", 50000, 50000)  # IHDR: 8-byte signature, length, "IHDR", width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over the type and the 13 data bytes
    return bytes(data)


def multipart(data: bytes) -> tuple[bytes, str]:
    """A multipart body with `data` as the field `file`, and its Content-Type."""
    request = httpx.Request("POST", "http://x/", files={"file": ("digit.png", data, "image/png")})
    return request.read(), request.headers["content-type"]


def chunks(n: int):
    for _ in range(n):
        yield b"0" * 100_000


BIG = b"0" * (2**20 + 1)
HUGE = b"0" * (MAX_UPLOAD + 1)
HUGE_FORM, HUGE_FORM_TYPE = multipart(HUGE)
JSON = {"content-type": "application/json"}
MULTIPART = "multipart/form-data"


BAD_REQUESTS = {  # name: (what to post to /api/predict, status, a fragment of its detail, explained)
    "upload over 10 MB": (upload(HUGE), 413, "upload is over 10 MB"),
    "multipart over 10 MB, Content-Length lying": (
        dict(content=HUGE_FORM, headers={"content-type": HUGE_FORM_TYPE, "content-length": "1000"}), 413, "10 MB"),
    "JSON over 1 MB, Content-Length lying": (
        dict(content=BIG, headers={**JSON, "content-length": "10"}), 413, "over 1 MB"),
    "chunked body over 1 MB, no Content-Length": (dict(content=chunks(12), headers=JSON), 413, "over 1 MB"),
    "garbage bytes": (upload(os.urandom(2000)), 400, "not an image format"),
    "truncated PNG": (upload(png(drawn_one())[:300]), 400, "cannot read image"),
    "decompression bomb": (upload(bomb_png()), 400, f"{MAX_PIXELS} pixels"),
    "multipart without a boundary": (
        dict(content=b"--x\r\n", headers={"content-type": MULTIPART}), 400, "boundary"),
    "malformed multipart": (
        dict(content=b"garbage", headers={"content-type": f"{MULTIPART}; boundary=x"}), 400, "Invalid"),
    "no file field": (dict(files={"image": ("x.png", b"x", "image/png")}), 422, "body.file: Field required"),
    "plain text": (dict(content=b"7", headers={"content-type": "text/plain"}), 422, "body.file: Field required"),
    "27 rows": (dict(json={"pixels": [[0] * 28] * 27}), 422, "body.pixels: List should have at least 28 items"),
    "a short row": (dict(json={"pixels": [[0] * 28] * 27 + [[0] * 5]}), 422, "body.pixels.27: List should have"),
    "strings": (dict(json={"pixels": [["1"] * 28] * 28}), 422, "body.pixels.0.0: Input should be a valid number"),
    "over 255": (dict(json={"pixels": [[256] * 28] * 28}), 422, "less than or equal to 255"),
    "negative": (dict(json={"pixels": [[-1] * 28] * 28}), 422, "greater than or equal to 0"),
    "3-D pixels": (dict(json={"pixels": [[[0, 0, 0]] * 28] * 28}), 422, "body.pixels.0.0: Input should be a valid"),
    "another key": (dict(json={"pixels": [[0] * 28] * 28, "x": 1}), 422, "body.x: Extra inputs are not permitted"),
    "not JSON": (dict(content=b"{pixels:", headers=JSON), 422, "JSON decode error"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_predict_requests_get_a_clear_error_and_the_server_goes_on(client, case):
    kwargs, status, fragment = BAD_REQUESTS[case]
    answer = client.post("/api/predict", **kwargs)
    assert answer.status_code == status, answer.text
    assert fragment in explained(answer)
    assert_still_serving(client)


BAD_READS = {name: BAD_REQUESTS[name] for name in (
    "upload over 10 MB", "garbage bytes", "truncated PNG", "decompression bomb", "malformed multipart",
    "no file field")} | {
    "JSON pixels, not a file": (dict(json={"pixels": [[0] * 28] * 28}), 422, "body.file: Field required")}


@pytest.mark.parametrize("case", BAD_READS)
def test_bad_read_requests_get_a_clear_error_and_the_server_goes_on(client, case, number_photos):
    kwargs, status, fragment = BAD_READS[case]
    answer = client.post("/api/read", **kwargs)
    assert answer.status_code == status, answer.text
    assert fragment in explained(answer)
    photo = number_photos["1 MP"][1]
    assert client.post("/api/read", files={"file": ("photo.jpg", photo, "image/jpeg")}).status_code == 200


def test_pixels_sent_as_anything_but_json_are_refused_with_what_was_expected(client):
    answer = client.post("/api/predict/pixels", content=json.dumps({"pixels": [[0] * 28] * 28}),
                         headers={"content-type": "text/plain"})  # FastAPI parses only a JSON content type
    assert answer.status_code == 422 and "body: Input should be a valid dictionary" in explained(answer)
    answer = client.post("/api/predict/pixels", **upload(png(drawn_one())))  # binary: no UTF-8 to echo back
    assert answer.status_code == 422 and "bytes that are not JSON" in answer.text


@pytest.mark.parametrize("query", [
    "/api/generate?n=0", "/api/generate?n=10000", "/api/generate?n=two", "/api/generate?seed=-1",
    "/api/generate?format=gif", "/api/generate?scale=9", "/api/interpolate?steps=1",
    "/api/interpolate?steps=65", "/api/generate?digit=10", "/api/generate?digit=-1",
])
def test_out_of_range_generator_queries_get_422(client, query):
    answer = client.get(query)
    name = query.split("?")[1].split("=")[0]
    assert answer.status_code == 422 and explained(answer).startswith(f"query.{name}: "), answer.text
    assert client.get("/api/generate?n=1").status_code == 200


def test_a_server_without_models_says_which_flag_loads_them():
    with TestClient(create_app(None, None)) as bare:
        for reading in (dict(json={"pixels": [[0] * 28] * 28}), upload(png(drawn_one()))):
            answer = bare.post("/api/predict", **reading)
            assert answer.status_code == 503 and "--cnn" in answer.json()["detail"]
        for path in ("/api/generate", "/api/interpolate"):
            answer = bare.get(path)
            assert answer.status_code == 503 and "--gan" in answer.json()["detail"]
        assert bare.get("/api/models").json() == {"cnn": None, "gan": None}
        assert bare.get("/healthz").json() == {"status": "ok"}


# ----------------------------------------------------------------------------------------------
# Generating


def test_generate_png_is_a_grid_of_the_generators_digits(client):
    answer = client.get("/api/generate?n=10&seed=3")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-seed"] == "3"
    grid = Image.open(io.BytesIO(answer.content))
    assert grid.size == (4 * 30 + 2, 3 * 30 + 2)  # 4 columns x 3 rows of 28 px tiles, 2 px apart
    assert Image.open(io.BytesIO(client.get("/api/generate?n=10&seed=3&scale=2").content)).size == (244, 184)


def test_generate_json_is_reproducible_and_matches_the_generator(client, gan_run):
    body = client.get("/api/generate?n=5&seed=7&format=json").json()
    images = np.array(body["images"])
    assert body["seed"] == 7 and images.shape == (5, 28, 28)
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 0
    np.testing.assert_array_equal(images, load(gan_run.dir).generate(5, 7))
    assert client.get("/api/generate?n=5&seed=7&format=json").json() == body
    other = client.get("/api/generate?n=5&seed=8&format=json").json()["images"]
    assert not np.array_equal(np.array(other), images)

    sevens = client.get("/api/generate?n=5&seed=7&digit=7&format=json").json()["images"]
    np.testing.assert_array_equal(np.array(sevens), load(gan_run.dir).generate(5, 7, digit=7))
    assert not np.array_equal(np.array(sevens), images)

    unseeded = client.get("/api/generate?n=2&format=json").json()  # a random seed, returned for replays
    replay = client.get(f"/api/generate?n=2&format=json&seed={unseeded['seed']}").json()
    assert replay["images"] == unseeded["images"]


def test_interpolate_walks_from_one_seed_to_the_other(client):
    strip = client.get("/api/interpolate?seed_a=1&seed_b=2&steps=8")
    assert strip.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(strip.content)).size == (8 * 30 + 2, 32)
    body = client.get("/api/interpolate?seed_a=1&seed_b=2&steps=8&format=json").json()
    frames = np.array(body["images"])
    assert frames.shape == (8, 28, 28) and (body["seed_a"], body["seed_b"]) == (1, 2)
    ends = [np.array(client.get(f"/api/generate?n=1&seed={seed}&format=json").json()["images"][0])
            for seed in (1, 2)]
    assert np.abs(frames[0] - ends[0]).max() <= 1 and np.abs(frames[-1] - ends[1]).max() <= 1


# ----------------------------------------------------------------------------------------------
# Describing itself


def test_models_reports_the_checkpoints_and_what_they_measured(client, cnn_run, gan_run):
    models = client.get("/api/models").json()
    cnn, gan = models["cnn"], models["gan"]
    assert cnn["path"] == str(cnn_run.dir / "checkpoint.safetensors") and cnn["kind"] == "cnn"
    assert (cnn["preset"], cnn["dataset"], cnn["epochs"]) == ("seed", "mnist-sample", 3)
    assert cnn["test_acc"] == cnn_run.metrics[-1]["test_acc"]
    assert cnn["classes"] == [str(d) for d in range(10)]
    assert gan["kind"] == "gan" and gan["preset"] == "default" and gan["epochs"] == 2 and gan["conditional"]
    assert "fcd" not in cnn and "test_acc" not in gan and "classes" not in gan
    assert gan["fcd"] == next(m["fcd"] for m in reversed(gan_run.metrics) if m.get("fcd") is not None)
    assert gan["path"] == str(gan_run.dir / "best.safetensors")  # the run's best generator, by default
    with TestClient(create_app(gan=gan_run.dir, gan_checkpoint="last")) as last:
        assert last.get("/api/models").json()["gan"]["path"] == str(gan_run.dir / "checkpoint.safetensors")


def test_health_schema_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    endpoints = {"/api/read", "/api/predict", "/api/predict/pixels", "/api/generate", "/api/interpolate",
                 "/api/models", "/healthz"}
    assert endpoints <= set(schema["paths"])
    components = schema["components"]["schemas"]

    def model(operation, status="200", media="application/json"):
        """The component an operation's answer (or, with status=None, its request body) refers to."""
        content = operation["requestBody"] if status is None else operation["responses"][status]
        return components[content["content"][media]["schema"]["$ref"].rsplit("/", 1)[1]]

    by_file, by_pixels = (schema["paths"][path]["post"] for path in ("/api/predict", "/api/predict/pixels"))
    for predict in (by_file, by_pixels):
        assert predict["summary"] and predict["description"]
        assert model(predict)["title"] == "Prediction"  # declared and returned: FastAPI validated the answers
        assert {"400", "413", "422", "503"} <= set(predict["responses"])
    assert set(by_file["requestBody"]["content"]) == {MULTIPART}
    upload_form = model(by_file, None, MULTIPART)
    assert upload_form["required"] == ["file"] and upload_form["properties"]["file"]["type"] == "string"  # a file
    assert set(by_pixels["requestBody"]["content"]) == {"application/json"}
    assert model(by_pixels, None)["title"] == "Pixels"
    read = schema["paths"]["/api/read"]["post"]
    assert read["summary"] and read["description"] and {"400", "413", "422", "503"} <= set(read["responses"])
    assert model(read)["title"] == "NumberRead" and set(read["requestBody"]["content"]) == {MULTIPART}
    digit = components[model(read)["properties"]["digits"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(digit["properties"]) == {"digit", "probabilities", "digitness", "reason", "box", "image"}
    no_digit = read["responses"]["422"]["content"]["application/json"]["schema"]["anyOf"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in no_digit} == {"Problem", "Invalid"}  # no digit; a bad form
    generate = schema["paths"]["/api/generate"]["get"]
    assert set(generate["responses"]["200"]["content"]) == {"image/png", "application/json"}
    assert model(generate)["title"] == "Generated" and model(generate, "422")["title"] == "HTTPValidationError"
    assert client.get("/docs").status_code == 404  # Swagger UI loads from a CDN: not served

    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for element in ("canvas", "clear", "prediction", "probabilities", "seen", "upload", "digits", "verdict",
                    "photo-image", "boxes", "generate", "seed", "digit", "grid", "walk", "models"):
        assert f'id="{element}"' in page.text
    assert 'accept="image/*" capture="environment"' in page.text  # a phone offers its camera
    script, reading, style = client.get("/app.js"), client.get("/reading.js"), client.get("/style.css")
    assert all(js.headers["content-type"].startswith("text/javascript") for js in (script, reading))
    assert style.headers["content-type"].startswith("text/css")
    assert not any("://" in text for text in (page.text, script.text, reading.text, style.text))  # all from here


def test_digits_drawn_with_strokes_are_read_right_by_a_well_trained_cnn():
    def strokes(*lines):
        image = Image.new("L", (200, 200), 255)  # dark ink on white, as a person draws
        draw = ImageDraw.Draw(image)
        for line in lines:
            draw.line(line, fill=0, width=17)
        return image

    zero = strokes()
    ImageDraw.Draw(zero).ellipse([55, 25, 145, 175], outline=0, width=18)
    drawn = {0: zero, 1: drawn_one(), 4: strokes([(60, 30), (45, 110), (150, 110)], [(125, 40), (120, 175)]),
             7: strokes([(50, 35), (150, 35)], [(150, 35), (85, 175)])}
    with TestClient(create_app(EVALUATOR, None)) as client:  # the shipped `best` CNN, 0.99 on real digits
        for digit, image in drawn.items():
            assert predict_png(client, png(image)).json()["digit"] == digit
