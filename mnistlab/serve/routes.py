"""The routes: `api` (JSON and PNG) and `page` (the static page), each reading what `create_app` loaded from
`request.app.state`: `batcher` (a MicroBatcher or None), `generator` (or None), `models` (what /api/models
says) and `page` (the page's files, read at start-up, so no request path reaches the file system).

    POST /api/predict          an image file (multipart field `file`) → the digit, the ten probabilities
                               and the normalised 28x28 image the model saw
    POST /api/predict/pixels   {"pixels": 28x28 numbers} → the same
    GET  /api/generate         n new digits from the GAN: a PNG grid, or JSON with format=json
    GET  /api/interpolate      a walk through latent space between two seeds: a PNG strip, or JSON
    GET  /api/models           which checkpoints are loaded and what they measured
    GET  /healthz              liveness

Out-of-range parameters and malformed pixels get FastAPI's own 422: a list of what is wrong and where
(`validation_failed`).
"""

from __future__ import annotations

import contextlib
import io
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
from mnistlab.inference import Generator
from mnistlab.plots import grid_image, png_bytes
from mnistlab.preprocess import load_image
from mnistlab.serve.batching import MicroBatcher
from mnistlab.serve.schemas import Generated, Models, Pixels, Prediction, Problem, Walk

PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
# The page loads nothing from elsewhere; the policy makes the browser hold it to that.
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; base-uri 'none'; form-action 'none'"

SEED = Annotated[int, Query(ge=0, le=2**32 - 1, description="noise seed: the same seed, the same digits")]
FORMAT = Annotated[Literal["png", "json"], Query(description="png: one image; json: uint8 arrays")]
SCALE = Annotated[int, Query(ge=1, le=8, description="PNG only: enlarge each pixel to scale x scale")]
STEPS = Annotated[int, Query(ge=2, le=64, description="digits in the walk, both ends included")]
N = Annotated[int, Query(ge=1, le=256, description="how many digits")]
DIGIT = Annotated[int | None, Query(ge=0, le=9, description="only this digit (conditional GAN)")]
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


Classifying = Annotated[MicroBatcher, Depends(loaded_classifier)]
Generating = Annotated[Generator, Depends(loaded_generator)]

api = APIRouter(responses={503: {"model": Problem, "description": "that model is not loaded"}})
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the image cannot be read: not an image, broken, or too large to decode"},
    413: {"model": Problem, "description": "body over 1 MB"},
}


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


def _prediction(result: dict[str, Any]) -> Prediction:
    return Prediction(digit=result["digit"], label=result["label"], probabilities=result["probabilities"],
                      image=np.round(result["image"], 3).tolist())


@api.post("/api/predict", summary="Read a digit from an image file", responses=READ_ERRORS, description=(
    "Send an image file as the multipart form field `file` (`curl -F file=@digit.png`). It gets MNIST's "
    "normalisation first, dark-on-light and light-on-dark alike; `image` in the answer is the 28x28 result, "
    "which is what the model saw. (A JSON body sent here is answered by /api/predict/pixels.)"))
async def predict_file(
    file: Annotated[UploadFile, File(description="a PNG or JPEG of one digit, any size, up to 1 MB")],
    classifier: Classifying,
) -> Prediction:
    with refused_as(400):
        image = await run_in_threadpool(load_image, _Upload(await file.read()))  # decoding takes CPU
        return _prediction(await classifier.predict(image))


@api.post("/api/predict/pixels", summary="Read a digit drawn as 28x28 numbers", responses=READ_ERRORS,
          description='JSON `{"pixels": [[...28 numbers...], ... 28 rows]}` with values 0..255 (or 0..1), '
                      "as the page sends its canvas; normalised as an upload is.")
async def predict_pixels(body: Pixels, classifier: Classifying) -> Prediction:
    with refused_as(400):
        return _prediction(await classifier.predict(body.as_image()))


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


def _page_file(request: Request, name: str, headers: dict[str, str] | None = None) -> Response:
    return Response(request.app.state.page[name], media_type=PAGE_FILES[name], headers=headers)


@page.get("/")
async def index(request: Request) -> Response:
    return _page_file(request, "index.html", {"Content-Security-Policy": PAGE_POLICY})


@page.get("/app.js")
async def script(request: Request) -> Response:
    return _page_file(request, "app.js")


@page.get("/style.css")
async def style(request: Request) -> Response:
    return _page_file(request, "style.css")
