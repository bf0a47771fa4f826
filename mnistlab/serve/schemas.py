"""What the API takes and answers, as pydantic models: FastAPI validates requests and responses against them
and writes them into `/openapi.json`, so the schema is the behaviour."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# strict: "1" is not a number here, as it is not in JSON
Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]
Row = Annotated[list[Pixel], Field(min_length=28, max_length=28)]


class Pixels(BaseModel):
    """A digit as numbers: what the page sends, its canvas downsampled to 28x28."""

    model_config = ConfigDict(extra="forbid")
    pixels: Annotated[list[Row], Field(min_length=28, max_length=28, description=(
        "28 rows of 28 numbers, 0..255, or 0..1 when none is above 1. Light ink on dark or dark ink on "
        "light: both work, as the image gets MNIST's normalisation (crop to the ink, fit 20x20, centre the "
        "mass)."))]

    def as_image(self) -> np.ndarray:
        """float32 (28, 28) in [0, 1]."""
        pixels = np.array(self.pixels, dtype=np.float32)
        return pixels / 255 if pixels.max() > 1 else pixels


DIGITNESS = ("how digit-like the input is: the share of the model's validation digits that are less so, 0..1; "
             "under 0.005 is not a digit. null for a model trained before digitness was measured")
REASON = 'why no digit is named: "not a digit", or "unsure: 4 or 9"; absent when one is'


Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Map = list[list[float]]


Image28 = Annotated[list[Annotated[list[Fraction], Field(min_length=28, max_length=28)]], Field(
    min_length=28, max_length=28, description="28 rows of 28 numbers, 0 = background .. 1 = ink")]


class Seen(BaseModel):
    """A digit as the model saw it: `image` from /api/predict or /api/read, explained as it is (no framing)."""

    model_config = ConfigDict(extra="forbid")
    image: Image28


class TaughtDigit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: int = Field(ge=0, le=9, description="which digit it is, as the person says")
    image: Image28 = Field(description="as the model saw it: the `image` of /api/predict or of a digit of /api/read")


class Teach(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digits: list[TaughtDigit] = Field(min_length=1, max_length=100, description=(
        "a person's digits: at least 2 different digits, each at least 3 times (a tenth of each is held out)"))


class Teaching(BaseModel):
    state: Literal["idle", "running", "done", "failed"]
    epoch: int | None = Field(None, description="epochs done of `epochs`")
    epochs: int | None = None
    source: str | None = Field(None, description="the run being taught")
    digits: str | None = Field(None, description="the class folder the digits were written to")
    run: str | None = Field(None, description="the new run, once done: the server now reads with it")
    test_acc: float | None = Field(None, description="the new run's accuracy on the held-out tenth of the digits")
    error: str | None = Field(None, description="why it failed, in one line")


class Explanation(BaseModel):
    digit: int = Field(description="the likeliest class, explained")
    label: str
    runner_up: int = Field(description="the second likeliest class")
    runner_up_label: str
    probabilities: list[float] = Field(description="softmax probability of each class, in class order")
    attribution: Map = Field(description=(
        "28x28, integrated gradients from a blank image: how much each pixel pushed the answer's logit up "
        "(positive) or down (negative); they add up to the logit's change from a blank image"))
    toward_runner_up: Map = Field(description=(
        "28x28: the runner-up's attribution minus the answer's; positive where ink argues for the runner-up"))


class Prediction(BaseModel):
    digit: int | None = Field(description="index of the most probable class; null when `reason` says why not")
    label: str | None = Field(description="its name (the digit itself for MNIST)")
    probabilities: list[float] = Field(description="softmax probability of each class, in class order")
    digitness: float | None = Field(description=DIGITNESS)
    reason: str | None = Field(None, description=REASON)
    image: list[list[float]] = Field(
        description="the normalised 28x28 image the model saw, 0 = background .. 1 = ink, to 3 decimals")


class DigitRead(BaseModel):
    digit: int | None = Field(description="index of the most probable class: the digit; null when `reason` says "
                              "why not (then `text` has ? in its place)")
    probabilities: list[float] = Field(description="softmax probability of each class, in class order")
    digitness: float | None = Field(description=DIGITNESS)
    reason: str | None = Field(None, description=REASON)
    box: list[int] = Field(min_length=4, max_length=4, description=(
        "x0, y0, x1, y1 of the digit's ink in the uploaded image's own pixels (after its EXIF rotation), "
        "x1 and y1 exclusive"))
    image: list[list[float]] = Field(
        description="the 28x28 image the model saw of this digit, 0 = background .. 1 = ink, to 3 decimals")


class NumberRead(BaseModel):
    text: str = Field(description="the number: the digits read, left to right, ? for a mark that is not one")
    width: int = Field(description="the uploaded image's width in pixels (after its EXIF rotation)")
    height: int = Field(description="its height: `box` is in these pixels")
    digits: list[DigitRead] = Field(min_length=1, description="each digit, left to right")


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


class Problem(BaseModel):
    """Every error but a validation error (422, FastAPI's list of what is wrong where) answers this."""

    detail: str = Field(description="what is wrong and what to send instead")


class Invalid(BaseModel):
    """FastAPI's own 422: what is wrong in the request, and where."""

    detail: list[dict[str, Any]] = Field(description="one entry per error: `loc` (where), `msg`, `type`")
