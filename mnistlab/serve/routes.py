"""The routes: `api` (JSON and PNG) and `page` (the static page), each reading what `create_app` loaded from
`request.app.state`: `batcher` (a MicroBatcher or None), `generator` (or None), `models` (what /api/models
says) and `page` (the page's files, read at start-up, so no request path reaches the file system).

    POST /api/read             a photo or drawing of a number (multipart field `file`) → the number as text,
                               and each digit's box in the photo, its probabilities and the 28x28 image the
                               model saw; 422 when there is no digit in it
    POST /api/predict          an image file (multipart field `file`) → the digit, the ten probabilities
                               and the normalised 28x28 image the model saw
    POST /api/predict/pixels   {"pixels": 28x28 numbers} → the same
    GET  /api/generate         n new digits from the GAN: a PNG grid, or JSON with format=json
    GET  /api/interpolate      a walk through latent space between two seeds: a PNG strip, or JSON
    POST /api/teach            a person's labelled digits → fine-tune the reader on them, in the background
    GET  /api/teach            how far that is; when done, the server reads with the new run
    GET  /api/models           which checkpoints are loaded and what they measured
    GET  /healthz              liveness

Out-of-range parameters and malformed pixels get FastAPI's own 422: a list of what is wrong and where
(`validation_failed`). Uploads are decoded in memory by `frame.load_image`, which refuses decompression
bombs from the header, and shrunk to about PHOTO_PIXELS before they are read (`decoded`).
"""

from __future__ import annotations

import contextlib
import io
import math
import secrets
from typing import Annotated, Any, Iterator, Literal

import numpy as np
import torch
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from mnistlab.errors import MnistlabError
from mnistlab.inference import Classifier, Generator
from mnistlab.ood import answer
from mnistlab.photo.frame import load_image, to_grey
from mnistlab.plots import grid_image, png_bytes
from mnistlab.serve.batching import MicroBatcher
from mnistlab.serve.middleware import MAX_BODY, MAX_UPLOAD
from mnistlab.serve.schemas import (
    DigitRead,
    Explanation,
    Generated,
    Invalid,
    Models,
    NumberRead,
    Pixels,
    Prediction,
    Problem,
    Seen,
    Teach,
    Teaching,
    Walk,
)
from mnistlab.serve.teaching import Busy

PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "reading.js": "text/javascript",
              "camera.js": "text/javascript", "teach.js": "text/javascript", "heatmap.js": "text/javascript",
              "style.css": "text/css"}
# The page loads nothing from elsewhere; the policy makes the browser hold it to that.
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; base-uri 'none'; form-action 'none'"

SEED = Annotated[int, Query(ge=0, le=2**32 - 1, description="noise seed: the same seed, the same digits")]
FORMAT = Annotated[Literal["png", "json"], Query(description="png: one image; json: uint8 arrays")]
SCALE = Annotated[int, Query(ge=1, le=8, description="PNG only: enlarge each pixel to scale x scale")]
STEPS = Annotated[int, Query(ge=2, le=64, description="digits in the walk, both ends included")]
N = Annotated[int, Query(ge=1, le=256, description="how many digits")]
UPLOAD = Annotated[UploadFile, File(description=f"a PNG or JPEG, any size up to {MAX_UPLOAD // 2**20} MB")]
DIGIT = Annotated[int | None, Query(ge=0, le=9, description="only this digit (conditional GAN)")]
ABSTAIN = Annotated[bool, Query(description='false: always name the likeliest digit, never "not a digit" or "unsure"')]
PNG_OR_JSON = {"content": {"image/png": {}}, "description": "a PNG image, or JSON with format=json"}


# Dependencies are async: a plain `def` would cost a threadpool hop on every request.
async def loaded_classifier(request: Request) -> MicroBatcher:
    if request.app.state.batcher is None:
        raise HTTPException(503, "no classifier loaded: start the server with --cnn RUN_OR_CHECKPOINT")
    return request.app.state.batcher


async def loaded_generator(request: Request) -> Generator:
    if request.app.state.generator is None:
        raise HTTPException(503, "no generator loaded: start the server with --gan RUN_OR_CHECKPOINT")
    return request.app.state.generator


async def loaded_reader(request: Request) -> Classifier:
    batcher = await loaded_classifier(request)
    return batcher.classifier


Classifying = Annotated[MicroBatcher, Depends(loaded_classifier)]
Reader = Annotated[Classifier, Depends(loaded_reader)]
Generating = Annotated[Generator, Depends(loaded_generator)]

api = APIRouter(responses={503: {"model": Problem, "description": "that model is not loaded"}})
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the image cannot be read: not an image, broken, or too large to decode"},
    413: {"model": Problem, "description": f"an upload over {MAX_UPLOAD // 2**20} MB, or another body over "
                                           f"{MAX_BODY // 2**20} MB"},
}
PHOTO_PIXELS = 2_000_000  # uploads are shrunk to about this first: reading works at 480 px tall (ink.INK.work_side)
# Modes whose pixels average when shrunk (palette indices do not): the rest are read at full size.
SHRINKABLE = {"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"}


@contextlib.contextmanager
def refused_as(status: int) -> Iterator[None]:
    """A MnistlabError (bad input, by the library's own checks) becomes an HTTP error with its message."""
    try:
        yield
    except MnistlabError as e:
        raise HTTPException(status, str(e)) from None


async def validation_failed(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422 answer, but a body that is not JSON is named by its size, not echoed: FastAPI's encoder
    fails on bytes that are not UTF-8 (an upload sent to the pixels route), which would make it a 500."""
    not_json = {bytes: lambda body: f"({len(body)} bytes that are not JSON)"}
    return JSONResponse({"detail": jsonable_encoder(error.errors(), custom_encoder=not_json)}, 422)


class _Upload(io.BytesIO):
    """Uploaded bytes. `load_image` names its source in error messages: say "the upload", not a repr.
    (No `name` attribute on purpose: Pillow would take it for a file name.)"""

    def __str__(self) -> str:
        return "(the upload)"


def decoded(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """An uploaded image as `to_grey` makes it, shrunk by a whole factor to about PHOTO_PIXELS (a 12-megapixel
    photo then takes ~0.1 s, not ~0.2 s, to decode and read); and its (width, height) as uploaded, after
    its EXIF rotation."""
    image = load_image(_Upload(data))
    size = image.size
    factor = round(math.sqrt(image.width * image.height / PHOTO_PIXELS))
    if factor > 1 and image.mode in SHRINKABLE:
        image = image.reduce(factor)
    return to_grey(image), size


def _scaled(box: tuple[int, int, int, int], scale: tuple[float, float], size: tuple[int, int]) -> list[int]:
    """A box in the shrunk image's pixels -> in the upload's, still covering the ink."""
    (x0, y0, x1, y1), (sx, sy), (width, height) = box, scale, size
    return [int(x0 * sx), int(y0 * sy), min(width, math.ceil(x1 * sx)), min(height, math.ceil(y1 * sy))]


def _read(classifier: Classifier, grey: np.ndarray, size: tuple[int, int], abstain: bool) -> NumberRead:
    """The number in `grey`, boxes in the pixels of the upload it was shrunk from (`size`)."""
    with torch.inference_mode():
        reading = classifier.read_one(grey, name="the photo", abstain=abstain)
    scale = (size[0] / grey.shape[1], size[1] / grey.shape[0])
    digits = [DigitRead(**{k: v for k, v in d.items() if k not in ("box", "image")},
                        box=_scaled(tuple(d["box"]), scale, size), image=np.round(d["image"], 3).tolist())
              for d in reading["digits"]]
    return NumberRead(text=reading["text"], width=size[0], height=size[1], digits=digits)


def _prediction(result: dict[str, Any], abstain: bool, classes: list[str]) -> Prediction:
    """`Classifier.predict`'s likeliest digit (the batch mixes requests that abstain and ones that do not), with
    the run's rule applied when the request abstains."""
    digit, reason = answer(result["digitness"], np.asarray(result["probabilities"]), classes, abstain)
    return Prediction(digit=digit, label=None if reason else classes[digit], probabilities=result["probabilities"],
                      digitness=result["digitness"], reason=reason, image=np.round(result["image"], 3).tolist())


NO_DIGIT = {422: {"model": Problem | Invalid, "description": (
    "no digit found in the photo (`detail` says so), or no `file` in the request (FastAPI's list)")}}


@api.post("/api/read", summary="Read a number from a photo", responses=READ_ERRORS | NO_DIGIT, description=(
    "Send a photo (or a drawing, or a scan) of a number written on one line, 1 to 10 digits, as the "
    "multipart form field `file` (`curl -F file=@photo.jpg`). The ink is found on the page (uneven light, "
    "shadows, ruled lines), cut into digits left to right, and each digit is read. Each `box` is in the "
    "uploaded image's own pixels, `width` x `height`. A photo without a digit gets 422 saying so, not a guess."))
async def read_file(file: UPLOAD, classifier: Reader, abstain: ABSTAIN = True) -> NumberRead:
    data = await file.read()
    with refused_as(400):
        grey, size = await run_in_threadpool(decoded, data)  # decoding takes CPU
    with refused_as(422):  # the image is fine, but it holds no digit
        return await run_in_threadpool(_read, classifier, grey, size, abstain)


@api.post("/api/predict", summary="Read a digit from an image file", responses=READ_ERRORS, description=(
    "Send an image file as the multipart form field `file` (`curl -F file=@digit.png`). It gets MNIST's "
    "normalisation first, dark-on-light and light-on-dark alike; `image` in the answer is the 28x28 result, "
    "which is what the model saw. (A JSON body sent here is answered by /api/predict/pixels.)"))
async def predict_file(file: UPLOAD, classifier: Classifying, abstain: ABSTAIN = True) -> Prediction:
    with refused_as(400):
        grey, _ = await run_in_threadpool(decoded, await file.read())  # decoding takes CPU
        return _prediction(await classifier.predict(grey), abstain, classifier.classifier.classes)


@api.post("/api/predict/pixels", summary="Read a digit drawn as 28x28 numbers", responses=READ_ERRORS,
          description='JSON `{"pixels": [[...28 numbers...], ... 28 rows]}` with values 0..255 (or 0..1), '
                      "as the page sends its canvas; normalised as an upload is.")
async def predict_pixels(body: Pixels, classifier: Classifying, abstain: ABSTAIN = True) -> Prediction:
    with refused_as(400):
        return _prediction(await classifier.predict(body.as_image()), abstain, classifier.classifier.classes)


@api.post("/api/explain", summary="Why a digit was read as it was", responses=READ_ERRORS, description=(
    "JSON `{\"image\": [[...28 numbers 0..1...], ... 28 rows]}`: a digit as the model saw it (the `image` of "
    "/api/predict or of a digit of /api/read). Answers the likeliest digit and the runner-up with maps of "
    "which pixels pushed each (integrated gradients; needs the server's `explain` extra, Captum)."))
async def explain_digit(body: Seen, classifier: Reader) -> Explanation:
    with refused_as(503):  # Captum missing: the server can do everything else
        why = await run_in_threadpool(classifier.explain, np.array(body.image, np.float32), True)
    return Explanation(**{k: v for k, v in why.items() if k not in ("image", "digitness")})


@api.get("/api/generate", summary="Draw new digits", response_model=Generated, responses={200: PNG_OR_JSON},
         description="`n` new digits from the generator. The same seed gives the same digits; without one, a "
                     "random seed is used and returned (JSON) or sent in the `X-Seed` header (PNG).")
def generate(generator: Generating, n: N = 16, seed: SEED | None = None, format: FORMAT = "png",
             scale: SCALE = 1, digit: DIGIT = None) -> Generated | Response:
    seed = secrets.randbelow(2**32) if seed is None else seed
    with refused_as(422), torch.inference_mode():  # refused: a digit asked of an unconditional generator
        images = generator.generate(n, seed, digit)
    if format == "json":
        return Generated(images=images.tolist(), seed=seed)
    return _png(grid_image(images, scale=scale), {"X-Seed": str(seed)})


@api.get("/api/interpolate", summary="Walk through latent space", response_model=Walk,
         responses={200: PNG_OR_JSON},
         description="`steps` digits on the straight line in noise space from seed_a's digit to seed_b's.")
def interpolate(generator: Generating, seed_a: SEED = 1, seed_b: SEED = 2, steps: STEPS = 8,
                format: FORMAT = "png", scale: SCALE = 1) -> Walk | Response:
    with torch.inference_mode():
        images = generator.interpolate(seed_a, seed_b, steps)
    if format == "json":
        return Walk(images=images.tolist(), seed_a=seed_a, seed_b=seed_b)
    return _png(grid_image(images, ncol=steps, scale=scale))


@api.post("/api/teach", summary="Teach the reader a person's hand", status_code=202, response_model=Teaching,
          response_model_exclude_none=True, responses={409: {"model": Problem, "description": "already teaching"}},
          description="The person's digits, each labelled, as the model saw them. They are written to a class "
                      "folder under the runs directory and the served run is fine-tuned on them in the background "
                      "(MNIST's digits replayed); GET /api/teach says how far it is, and when it is done the server "
                      "reads with the new run.")
async def teach(body: Teach, classifier: Reader, request: Request) -> dict[str, Any]:
    digits = [(d.label, np.array(d.image, np.float32)) for d in body.digits]
    try:
        return request.app.state.teacher.start(classifier, digits)
    except Busy as e:
        raise HTTPException(409, str(e)) from None
    except MnistlabError as e:  # digits that cannot be taught
        raise HTTPException(422, str(e)) from None


@api.get("/api/teach", summary="How far teaching is", response_model=Teaching, response_model_exclude_none=True)
async def teaching(request: Request) -> dict[str, Any]:
    return dict(request.app.state.teacher.status)


# exclude_unset: a CNN's entry has no `fcd` and a GAN's no `test_acc` (null would read "not measured").
@api.get("/api/models", summary="Loaded checkpoints", response_model=Models, response_model_exclude_unset=True,
         description="Which checkpoints the server loaded and what they measured: test accuracy for the "
                     "classifier, FCD for the generator; null for one that is not loaded.")
async def list_models(request: Request) -> dict[str, Any]:
    return request.app.state.models


@api.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _png(image: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(png_bytes(image), media_type="image/png", headers=headers)


page = APIRouter(include_in_schema=False)


def _page_route(name: str) -> None:
    """GET /NAME answers the page's file NAME, from memory; the page itself is GET /."""
    headers = {"Content-Security-Policy": PAGE_POLICY} if name == "index.html" else None

    async def page_file(request: Request) -> Response:
        return Response(request.app.state.page[name], media_type=PAGE_FILES[name], headers=headers)

    page.add_api_route("/" if name == "index.html" else f"/{name}", page_file, methods=["GET"])


for _name in PAGE_FILES:
    _page_route(_name)
