"""The web app's server: a JSON API around one classifier and one generator, and the page in `static/`.

    POST /api/predict       an image (multipart field `file`) or {"pixels": 28x28 numbers} → the digit,
                            the ten probabilities and the normalised 28x28 image the model saw
    GET  /api/generate      n new digits from the GAN: a PNG grid, or JSON with format=json
    GET  /api/interpolate   a walk through latent space between two seeds: a PNG strip, or JSON
    GET  /api/models        which checkpoints are loaded and what they measured
    GET  /healthz           liveness

Hardening: request bodies over 1 MB get 413, at once when Content-Length says so and while reading when it
lied or was absent; uploads are decoded in memory by `preprocess.load_image`, which refuses
decompression bombs from the header, before decoding; no route has a path parameter and the page's files are
read into memory at start-up, so nothing a request says reaches the file system.

Concurrency: the models are loaded once; decoding, preprocessing and the forward passes run in the threadpool
under `torch.inference_mode()`, with no lock, so the event loop keeps accepting requests. Predictions are
micro-batched (`MicroBatcher`): requests arriving while the classifier is busy share its next call.
"""

from __future__ import annotations

import asyncio
import gc
import io
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnistlab.checkpoint import CHECKPOINT_NAME, load_checkpoint
from mnistlab.errors import MnistlabError
from mnistlab.inference import Classifier, Generator, load
from mnistlab.plots import grid_image, png_bytes
from mnistlab.preprocess import load_image

MAX_BODY = 2**20  # bytes: a digit needs far less, and this keeps every upload in memory
STATIC = Path(__file__).with_name("static")
# The page loads nothing from elsewhere; the policy makes the browser hold it to that.
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; base-uri 'none'; form-action 'none'"
SEED = Annotated[int, Query(ge=0, le=2**32 - 1, description="noise seed: the same seed, the same digits")]
FORMAT = Annotated[Literal["png", "json"], Query(description="png: one image; json: uint8 arrays")]
SCALE = Annotated[int, Query(ge=1, le=8, description="PNG only: enlarge each pixel to scale x scale")]
STEPS = Annotated[int, Query(ge=2, le=64, description="digits in the walk, both ends included")]

Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=28, max_length=28)]


class Pixels(BaseModel):
    """A digit as numbers: what the page sends, its canvas downsampled to 28x28."""

    model_config = ConfigDict(extra="forbid")
    pixels: Annotated[list[Row], Field(min_length=28, max_length=28, description=(
        "28 rows of 28 numbers, 0..255, or 0..1 when none is above 1. Light ink on dark or dark ink on "
        "light: both work, as the image gets MNIST's normalisation (crop to the ink, fit 20x20, centre the "
        "mass)."))]


class Prediction(BaseModel):
    digit: int = Field(description="index of the most probable class")
    label: str = Field(description="its name (the digit itself for MNIST)")
    probabilities: list[float] = Field(description="softmax probability of each class, in class order")
    image: list[list[float]] = Field(
        description="the normalised 28x28 image the model saw, 0 = background .. 1 = ink, to 3 decimals")


class Generated(BaseModel):
    images: list[list[list[int]]] = Field(description="n x 28 x 28 uint8, 0 = background, 255 = ink")
    seed: int


class Walk(BaseModel):
    images: list[list[list[int]]] = Field(description="steps x 28 x 28 uint8, seed_a's digit to seed_b's")
    seed_a: int
    seed_b: int


class ModelInfo(BaseModel):
    path: str
    kind: Literal["cnn", "gan"]
    preset: str
    dataset: str
    epochs: int = Field(description="epochs trained")
    test_acc: float | None = Field(None, description="CNN: test accuracy after the last epoch")
    fcd: float | None = Field(
        None, description="GAN: Fréchet classifier distance, last measured (lower is better)")
    classes: list[str] | None = Field(None, description="CNN: class names, in the order of `probabilities`")
    conditional: bool | None = Field(None, description="GAN: whether /api/generate takes a `digit`")


class Models(BaseModel):
    cnn: ModelInfo | None
    gan: ModelInfo | None


PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "a PNG or JPEG of one digit, any size, up to 1 MB"}}}},
        "application/json": {"schema": Pixels.model_json_schema()},
    },
}


class BodyLimit:
    """ASGI middleware: request bodies over `limit` bytes get 413 with a JSON explanation.

    Refused before reading when Content-Length declares too much; counted as they arrive otherwise, so a
    chunked body or a lying header gains nothing. (FastAPI's own `max_body_size` answers the first case with
    plain text, unlike every other error here.)
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self.error = HTTPException(413, f"the request body is over {limit // 2**20} MB; send a smaller image "
                                        "(the model sees 28x28 pixels, so a small one loses nothing)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": self.error.detail}, 413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:  # raised inside the endpoint's read: FastAPI answers it as it is
                raise self.error
            return message

        await self.app(scope, counting_receive, send)


class _Upload(io.BytesIO):
    """Uploaded bytes. `load_image` names its source in error messages: say "the upload", not a repr.
    (No `name` attribute on purpose: Pillow would take it for a file name.)"""

    def __str__(self) -> str:
        return "(the upload)"


def create_app(cnn: str | Path | None = None, gan: str | Path | None = None) -> FastAPI:
    """The app, serving the classifier `cnn` and the generator `gan` (run directories or checkpoints).

    Either may be None; its endpoints then answer 503 saying which flag would load one.
    """
    # fp32: on a CPU, bf16 autocast costs more than it saves on batches this small
    classifier = load(cnn, kind="cnn", precision="fp32") if cnn is not None else None
    generator = load(gan, kind="gan") if gan is not None else None
    batcher = MicroBatcher(classifier) if classifier else None
    models = {"cnn": _describe(classifier) if classifier else None,
              "gan": _describe(generator) if generator else None}
    files = {name: (STATIC / name).read_bytes() for name in ("index.html", "app.js", "style.css")}

    app = FastAPI(
        title="mnistlab", version="1",
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN; /openapi.json stays
        description="Read handwritten digits with a CNN; draw new ones with a DCGAN. The page at / uses it.",
    )
    app.state.models = models
    app.add_middleware(BodyLimit, limit=MAX_BODY)

    def need_classifier() -> MicroBatcher:
        if batcher is None:
            raise HTTPException(503, "no classifier loaded: start the server with --cnn RUN_OR_CHECKPOINT")
        return batcher

    def need_generator() -> Generator:
        if generator is None:
            raise HTTPException(503, "no generator loaded: start the server with --gan RUN_OR_CHECKPOINT")
        return generator

    @app.post(
        "/api/predict", summary="Read a digit", response_model=Prediction,
        openapi_extra={"requestBody": PREDICT_BODY},
        responses={400: {"description": "not a readable image, or too large to decode"},
                   413: {"description": "body over 1 MB"}, 415: {"description": "neither multipart nor JSON"},
                   422: {"description": "pixels not 28x28 numbers in 0..255"}},
        description=(
            "Send an image file as the multipart form field `file` (`curl -F file=@digit.png`), or JSON "
            '`{"pixels": [[...28 numbers...], ... 28 rows]}` with values 0..255 (or 0..1). Either way the '
            "image gets MNIST's normalisation first, dark-on-light and light-on-dark alike; `image` in the "
            "answer is the 28x28 result, which is what the model saw."),
    )
    async def predict(request: Request) -> Response:
        classifier = need_classifier()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if media == "multipart/form-data":
                upload = (await request.form()).get("file")
                if not hasattr(upload, "read"):
                    raise HTTPException(400, "no file: send the image as the multipart form field 'file'")
                data = _Upload(await upload.read())
                image = await run_in_threadpool(load_image, data)  # decoding takes CPU: off the event loop
            elif media == "application/json":
                image = _pixels(await request.body())
            else:
                raise HTTPException(415, "send multipart/form-data with an image in the field 'file', "
                                         'or application/json {"pixels": 28x28 numbers}')
            result = await classifier.predict(image)
        except MnistlabError as e:
            raise HTTPException(400, str(e)) from None
        # A Response built here skips FastAPI's generic encoder, several times slower on 784 floats.
        return JSONResponse({"digit": result["digit"], "label": result["label"],
                             "probabilities": result["probabilities"],
                             "image": np.round(result["image"], 3).tolist()})

    @app.get(
        "/api/generate", summary="Draw new digits", response_model=Generated,
        responses={200: {"content": {"image/png": {}}, "description": "a PNG grid, or JSON (format=json)"}},
        description="`n` new digits from the generator. The same seed gives the same digits; without one, a "
                    "random seed is used and returned (JSON) or sent in the `X-Seed` header (PNG).",
    )
    def generate(n: Annotated[int, Query(ge=1, le=256, description="how many digits")] = 16,
                 seed: SEED | None = None, format: FORMAT = "png", scale: SCALE = 1,
                 digit: Annotated[int | None, Query(ge=0, le=9, description="only this digit (conditional GAN)")]
                 = None) -> Response:
        model = need_generator()
        seed = secrets.randbelow(2**32) if seed is None else seed
        try:
            with torch.inference_mode():
                images = model.generate(n, seed, digit)
        except MnistlabError as e:  # a digit asked of an unconditional generator
            raise HTTPException(422, str(e)) from None
        if format == "json":
            return JSONResponse({"images": images.tolist(), "seed": seed})
        return _png(grid_image(images, scale=scale), {"X-Seed": str(seed)})

    @app.get(
        "/api/interpolate", summary="Walk through latent space", response_model=Walk,
        responses={200: {"content": {"image/png": {}}, "description": "a PNG strip, or JSON (format=json)"}},
        description="`steps` digits on the straight line in noise space from seed_a's digit to seed_b's.",
    )
    def interpolate(seed_a: SEED = 1, seed_b: SEED = 2, steps: STEPS = 8, format: FORMAT = "png",
                    scale: SCALE = 1) -> Response:
        model = need_generator()
        with torch.inference_mode():
            images = model.interpolate(seed_a, seed_b, steps)
        if format == "json":
            return JSONResponse({"images": images.tolist(), "seed_a": seed_a, "seed_b": seed_b})
        return _png(grid_image(images, ncol=steps, scale=scale))

    # exclude_unset: a CNN's entry has no `fcd` and a GAN's no `test_acc` (null would read "not measured").
    @app.get("/api/models", summary="Loaded checkpoints", response_model=Models,
             response_model_exclude_unset=True,
             description="Which checkpoints the server loaded and what they measured: test accuracy for the "
                         "classifier, FCD for the generator; null for one that is not loaded.")
    def list_models() -> dict[str, Any]:
        return models

    @app.get("/healthz", summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(files["index.html"], media_type="text/html",
                        headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/app.js", include_in_schema=False)
    def script() -> Response:
        return Response(files["app.js"], media_type="text/javascript")

    @app.get("/style.css", include_in_schema=False)
    def style() -> Response:
        return Response(files["style.css"], media_type="text/css")

    return app


def _pixels(body: bytes) -> np.ndarray:
    """A JSON body → float32 (28, 28) in [0, 1], or 422 with the first thing wrong with it."""
    try:
        pixels = np.array(Pixels.model_validate_json(body).pixels, dtype=np.float32)
    except ValidationError as e:
        error = e.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        message = f'{where}: {error["msg"]}; send {{"pixels": 28 rows of 28 numbers 0..255}}'
        raise HTTPException(422, message) from None
    return pixels / 255 if pixels.max() > 1 else pixels


class MicroBatcher:
    """Images that arrive while the model is busy are predicted together, in one `Classifier.predict` call.

    A request that finds the model idle starts at once (no waiting window: a lone request is not delayed);
    those arriving meanwhile wait for the next batch. One batch runs at a time, in the threadpool, so the
    event loop stays free, no lock is held, and the fixed cost of a call (~1 ms here, more than the
    convolutions) is paid once per batch. Under load this halved the server's CPU time per request.
    """

    def __init__(self, classifier: Classifier, max_batch: int = 64) -> None:
        self.classifier, self.max_batch = classifier, max_batch
        self.waiting: list[tuple[Any, asyncio.Future]] = []
        self.worker: asyncio.Task | None = None

    async def predict(self, image: Any) -> dict[str, Any]:
        """The classifier's answer for one image (anything `to_mnist` takes), or its MnistlabError raised."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((image, future))
        if self.worker is None:
            self.worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[: self.max_batch], self.waiting[self.max_batch :]
                images = [image for image, _ in batch]
                results = await run_in_threadpool(_predict_batch, self.classifier, images)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the client went away
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.worker = None


def _predict_batch(model: Classifier, images: list[Any]) -> list[dict[str, Any] | Exception]:
    """Predict a batch; if that fails, image by image, so that a bad image fails its own request only."""
    with torch.inference_mode():
        try:
            return model.predict(images)
        except Exception as e:  # returned, not raised: MicroBatcher hands it to that image's request
            if len(images) == 1:
                return [e]
    return [_predict_batch(model, [image])[0] for image in images]


def _png(image: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(png_bytes(image), media_type="image/png", headers=headers)


def _describe(model: Classifier | Generator) -> dict[str, Any]:
    """What /api/models says about a loaded model, from its checkpoint's config and metrics history."""
    state = load_checkpoint(model.path)
    history = state.get("metrics") or []
    info = {"path": str(model.path), "kind": state["kind"], "preset": state["config"]["preset"],
            "dataset": model.dataset, "epochs": history[-1]["epoch"] if history else 0}
    if state["kind"] == "cnn":
        return info | {"test_acc": history[-1].get("test_acc") if history else None, "classes": model.classes}
    quality = next((m for m in reversed(history) if m.get("fcd") is not None), {})
    return info | {"fcd": quality.get("fcd"), "conditional": model.conditional}


def newest_runs(runs_dir: str | Path) -> dict[str, Path]:
    """{"cnn": run dir, "gan": run dir}: the last written checkpoint of each kind under `runs_dir`."""
    found: dict[str, Path] = {}
    paths = Path(runs_dir).rglob(CHECKPOINT_NAME)
    for path in sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            kind = load_checkpoint(path)["kind"]
        except MnistlabError:  # not a mnistlab checkpoint, or damaged: not a candidate
            continue
        found.setdefault(kind, path.parent)
        if len(found) == 2:
            break
    return found


def serve(cnn: str | Path | None = None, gan: str | Path | None = None, runs_dir: str | Path = "runs",
          host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until Ctrl-C; without `cnn`/`gan`, serve the newest runs under `runs_dir`."""
    import uvicorn

    if cnn is None or gan is None:
        newest = newest_runs(runs_dir)
        cnn, gan = cnn or newest.get("cnn"), gan or newest.get("gan")
    if cnn is None and gan is None:
        raise MnistlabError(f"no trained models under {runs_dir}/: train one with `mnistlab train cnn` "
                            "or pass --cnn/--gan")
    # The requests are the parallelism. With several intra-op threads per forward pass, concurrent requests
    # oversubscribe the cores: on a busy 2-core machine a 0.3 ms forward pass took 50 ms.
    torch.set_num_threads(1)
    app = create_app(cnn, gan)
    # What is loaded by now (torch, FastAPI, the models) lives as long as the process: frozen, the garbage
    # collector stops scanning it, which under load had cost full collections of 175 ms, all requests waiting.
    gc.freeze()
    for kind, role in (("cnn", "classifier"), ("gan", "generator")):
        info = app.state.models[kind]
        if info is None:
            print(f"{role}: none (pass --{kind} RUN_OR_CHECKPOINT to load one)")
            continue
        measured = (f"test accuracy {info['test_acc']:.4f}" if info.get("test_acc") is not None
                    else f"FCD {info['fcd']:.2f}" if info.get("fcd") is not None else "not measured")
        print(f"{role}: {info['path']} ({kind}/{info['preset']} on {info['dataset']}, {measured})")
    print(f"open http://{f'[{host}]' if ':' in host else host}:{port}/  (Ctrl-C to stop)", flush=True)
    # No access log: the page predicts several times a second while someone draws. Errors are still logged.
    uvicorn.run(app, host=host, port=port, access_log=False)
