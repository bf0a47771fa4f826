"""Figures for run directories and notebooks. matplotlib is imported here only, on first use."""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from mnistlab.files import atomic_write_bytes


def _pyplot():
    import matplotlib

    # Headless runs (the CLI, the trainers) draw with Agg; a backend someone chose already (a notebook's
    # inline one, a GUI's, MPLBACKEND) is theirs: switching it would stop figures showing.
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a figure as PNG atomically, then close it."""
    atomic_write_bytes(path, _png(fig, dpi))


def save_side_by_side(figures: Sequence[Any], path: str | Path, dpi: int = 110) -> None:
    """Write several figures as one PNG, left to right, atomically; then close them."""
    images = [Image.open(io.BytesIO(_png(fig, dpi))) for fig in figures]
    canvas = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width
    atomic_write_bytes(path, png_bytes(canvas))


def _png(fig, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def grid_image(images: np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 1) -> Image.Image:
    """uint8 (N, 28, 28) → one grayscale grid image, light ink on dark, `pad` px between tiles."""
    n, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    canvas = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    grid = Image.fromarray(canvas, mode="L")
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST) if scale > 1 else grid


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_gif(frames: Sequence[Image.Image], path: str | Path, ms_per_frame: int = 300) -> None:
    """An animated GIF of equally sized frames, the last held longer; written atomically."""
    buf = io.BytesIO()
    durations = [ms_per_frame] * (len(frames) - 1) + [ms_per_frame * 5]
    frames[0].save(buf, format="GIF", save_all=True, append_images=list(frames[1:]), duration=durations, loop=0)
    atomic_write_bytes(path, buf.getvalue())


def classifier_curves(history: list[dict[str, Any]]):
    """Training loss, and validation / test accuracy, per epoch."""
    plt = _pyplot()
    epochs = [m["epoch"] for m in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [m["train_loss"] for m in history], "o-", label="train loss")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Training loss")
    for key, label in (("val_acc", "validation"), ("test_acc", "test")):
        values = [m.get(key) for m in history]
        if any(v is not None for v in values):
            ax_acc.plot(epochs, [v if v is not None else np.nan for v in values], "o-", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_matrix(report: dict[str, Any]):
    """The confusion matrix as a heat map with counts, rows true and columns predicted."""
    plt = _pyplot()
    cm = np.array(report["confusion"])
    classes = report["classes"]
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(np.log1p(cm), cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if np.log1p(v) > 0.6 * np.log1p(cm.max()) else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(max(classes, key=len)) > 2 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"Confusion matrix — accuracy {report['accuracy']:.4f} on {report['n']} images")
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    return fig


def reliability_diagram(calibration: dict[str, Any]):
    """Accuracy against confidence per bin, before and after the temperature; the diagonal is perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    edges = np.linspace(0, 1, calibration["bins"] + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for key, colour, label in (("before", "tab:orange", "T = 1"),
                               ("after", "tab:blue", f"T = {calibration['temperature']:.2f}")):
        table = calibration[f"reliability_{key}"]
        shown = np.array(table["count"]) > 0
        ax.plot(centres[shown], np.array(table["accuracy"])[shown], "o-", color=colour,
                label=f"{label}: ECE {100 * calibration[f'ece_{key}']:.2f} %")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title="Reliability on the test split")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def mistakes_grid(npz_path: str | Path, limit: int = 64):
    """Misclassified test digits, each titled true → predicted."""
    plt = _pyplot()
    data = np.load(npz_path)
    images, true, predicted, classes = data["images"], data["true"], data["predicted"], list(data["classes"])
    n = min(limit, len(images))
    ncol, pad = 8, 12  # the gap above each digit holds its title
    nrow = max(1, math.ceil(n / ncol))
    # One image with titles over it: a subplot per digit took seconds to lay out and draw.
    fig, ax = plt.subplots(figsize=(ncol * 1.2, nrow * 1.35))
    ax.imshow(np.asarray(grid_image(images[:n], ncol=ncol, pad=pad)), cmap="gray_r", vmin=0, vmax=255)
    ax.axis("off")
    h, w = images.shape[1:]
    for i in range(n):
        row, col = divmod(i, ncol)
        ax.text(pad + col * (w + pad) + w / 2, row * (h + pad) + pad / 2, f"{classes[true[i]]}→{classes[predicted[i]]}",
                ha="center", va="center", fontsize=8, color="firebrick")
    ax.set_title(f"{len(images)} misclassified test images (true→predicted), first {n} shown", fontsize=10)
    fig.tight_layout()
    return fig


def gan_curves(history: list[dict[str, Any]]):
    """Both networks' losses, D(x) and D(G(z)), and the quality metrics when they were measured."""
    plt = _pyplot()
    epochs = [m["epoch"] for m in history]
    quality = [m for m in history if m.get("fcd") is not None]
    fig, axes = plt.subplots(1, 3 if quality else 2, figsize=(14 if quality else 10, 3.6))
    axes[0].plot(epochs, [m["loss_d"] for m in history], "o-", label="discriminator")
    axes[0].plot(epochs, [m["loss_g"] for m in history], "o-", label="generator")
    axes[0].set(xlabel="epoch", ylabel="loss", title="Losses")
    axes[1].plot(epochs, [m["d_x"] for m in history], "o-", label="D(x), real")
    axes[1].plot(epochs, [m["d_g_z"] for m in history], "o-", label="D(G(z)), generated")
    axes[1].set(xlabel="epoch", ylabel="probability 'real'", title="Discriminator outputs", ylim=(0, 1))
    if quality:
        q_epochs = [m["epoch"] for m in quality]
        axes[2].plot(q_epochs, [m["fcd"] for m in quality], "o-", color="purple", label="FCD (lower is better)")
        axes[2].set(xlabel="epoch", ylabel="FCD", title="Sample quality", yscale="log")
        twin = axes[2].twinx()
        twin.plot(q_epochs, [m["class_entropy"] for m in quality], "s--", color="green", label="class entropy")
        twin.set_ylabel("class entropy (ln 10 = 2.303)")
        twin.legend(loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def compare_runs(runs: list[Any], key: str, label: str):
    """One metric per epoch for several runs (`runs.RunInfo`s) on one axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        points = [(m["epoch"], m[key]) for m in run.metrics if m.get(key) is not None]
        if points:
            ax.plot(*zip(*points), "o-", label=run.name)
    ax.set(xlabel="epoch", ylabel=label, title=f"{label} per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_errorbars(summary: dict[str, Any], label: Any) -> Any:
    """A sweep's metric per configuration: the mean with sd error bars, each seed's value as a dot."""
    plt = _pyplot()
    rows = [r for r in summary["configurations"] if r["n"]]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * max(1, len(rows))))
    for y, r in enumerate(rows):
        ax.errorbar(r["mean"], y, xerr=r["sd"] or 0, fmt="o", color="C0", capsize=4)
        ax.scatter(r["values"], [y] * len(r["values"]), s=10, color="C1", zorder=3)
    ax.set_yticks(range(len(rows)), [label(r["config"]) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{summary['metric']} (mean ± sd over seeds; dots: each seed)")
    ax.set_title(f"sweep {summary['study']}")
    fig.tight_layout()
    return fig


def fcd_over_time(curves: list[dict[str, Any]]):
    """FCD (log scale) against training seconds, one line per run (`runs.quality_over_time` dicts, each with a
    `label`), with the real data's floor and the target drawn in: one pair of lines when the runs share a
    floor (within 5 %), else each run's own, in its colour."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    floors = [c["floor"] for c in curves]
    shared = max(floors) <= 1.05 * min(floors)
    for c in curves:
        line, = ax.plot(c["seconds"], c["fcd"], "o-", ms=3, label=c["label"])
        if not shared:
            ax.axhline(c["floor"], color=line.get_color(), ls="--", lw=0.8)
            ax.axhline(c["target_fcd"], color=line.get_color(), ls=":", lw=0.8)
    if shared:
        times = curves[0]["target_fcd"] / curves[0]["floor"]
        ax.axhline(float(np.mean(floors)), color="black", ls="--", lw=1, label=f"real floor {np.mean(floors):.2f}")
        ax.axhline(times * float(np.mean(floors)), color="grey", ls=":", lw=1, label=f"{times:g}× floor")
    ax.set(xlabel="training seconds", ylabel="FCD (log scale, lower is better)", yscale="log",
           title="Sample quality over training time" + ("" if shared else " (dashed: each floor, dotted: target)"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
