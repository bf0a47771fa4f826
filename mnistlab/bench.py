"""Benchmarks: training throughput, side by side in one run, on the same model, data and machine.

    python -m mnistlab.bench cnn    # mnistlab's loop vs the PyTorch MNIST example's DataLoader loop (and a leaner one)
    python -m mnistlab.bench gan    # each DCGAN preset in plain fp32 vs mnistlab's fast path (and its step alone)
    python -m mnistlab.bench peak   # this CPU's own bf16 : fp32 ratio on a large matmul and convolution
    python -m mnistlab.bench all

Each configuration runs `--repeats` times, interleaved so that load on a shared machine hits all
alike; the table gives the median images/second, the spread (min–max) and the ratio of medians.
The mnistlab figures come from the real trainers (`images_per_s` of a training epoch, evaluation
excluded), so what is measured is what `mnistlab train` runs. The GAN's "step alone" row calls the same
trainer's step back to back with no loop around it: the gap to "preset defaults" is what the loop costs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mnistlab.config import CNN_PRESETS, preset, with_overrides
from mnistlab.data.datasets import Dataset, as_torch_dataset, load_dataset
from mnistlab.models.cnn import CNN

WARMUP_STEPS = 10
EXAMPLE = "PyTorch MNIST example (DataLoader, PIL, fp32, NCHW)"


class ExampleStyleMNIST(torch.utils.data.Dataset):
    """What the official example's DataLoader gets from torchvision's MNIST with `ToTensor()` and
    `Normalize((0.1307,), (0.3081,))`, one sample at a time: a PIL image, then a float tensor in [0, 1],
    then normalised (torchvision itself cannot be installed beside our torch wheel)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images.numpy(), labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[i], mode="L")  # torchvision.datasets.MNIST.__getitem__
        x = torch.from_numpy(np.array(image, copy=True)).unsqueeze(0).float().div(255)  # ToTensor
        return (x - 0.1307) / 0.3081, self.labels[i]  # Normalize


def plain_pytorch_loop(dataset: Dataset, preset_name: str, batch_size: int, steps: int, example_data: bool) -> float:
    """Images/second of the loop the official PyTorch MNIST example writes: a DataLoader over a Dataset
    that returns one sample at a time, fp32, NCHW, Adam. `example_data`: the samples come through the
    example's own pipeline (PIL image → ToTensor → Normalize); else straight from our uint8 tensor."""
    torch.manual_seed(0)
    model = CNN(CNN_PRESETS[preset_name].model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    samples = (ExampleStyleMNIST(dataset.train.images, dataset.train.labels) if example_data
               else as_torch_dataset(dataset.train))
    loader = torch.utils.data.DataLoader(samples, batch_size=batch_size, shuffle=True, drop_last=True)
    model.train()
    done, start = 0, time.perf_counter()
    while done < WARMUP_STEPS + steps:
        for data, target in loader:
            optimizer.zero_grad()
            output = model(data)
            loss = F.cross_entropy(output, target)
            loss.backward()
            optimizer.step()
            done += 1
            if done == WARMUP_STEPS:  # the first steps pay for kernel selection and allocation
                start = time.perf_counter()
            if done == WARMUP_STEPS + steps:
                break
    return steps * batch_size / (time.perf_counter() - start)


def mnistlab_loop(kind: str, dataset: Dataset, preset_name: str, **overrides) -> float:
    """Images/second of the second training epoch of the real mnistlab trainer (the first warms up)."""
    from mnistlab.train.classifier import train_classifier
    from mnistlab.train.gan import train_gan

    config = with_overrides(preset(kind, preset_name), {"epochs": 2, **overrides})
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "cnn":
            run = train_classifier(config, dataset, out=f"{tmp}/run", progress=False)
        else:
            run = train_gan(config, dataset, eval_every=0, out=f"{tmp}/run", progress=False)
    return run.metrics[1]["images_per_s"]


def measure(candidates: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            results[name].append(fn())
    return results


def report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(results[baseline])
    print(f"\n{title}")
    print(f"{'configuration':<54}{'median img/s':>13}{'spread':>18}{'vs ' + baseline[:14]:>20}")
    for name, values in results.items():
        median = statistics.median(values)
        spread = f"{min(values):.0f}–{max(values):.0f}"
        print(f"{name:<54}{median:>13.0f}{spread:>18}{median / base:>19.2f}x")


def bench_cnn(dataset: Dataset, repeats: int, presets: list[str], batch_sizes: list[int | None]) -> None:
    for name in presets:
        for batch in batch_sizes:
            batch = batch or CNN_PRESETS[name].train.batch_size
            # An epoch of at most 300 steps; the plain loop times as many, after its own warm-up.
            subset = _head(dataset, 300 * batch)
            steps = len(subset.train) // batch
            candidates = {
                EXAMPLE: lambda: plain_pytorch_loop(subset, name, batch, steps, example_data=True),
                "plain loop, tensor samples (no PIL, no Normalize)": lambda: plain_pytorch_loop(
                    subset, name, batch, steps, example_data=False),
                "mnistlab fp32, NCHW": lambda: mnistlab_loop("cnn", subset, name, batch_size=batch, precision="fp32",
                                                              channels_last=False),
                "mnistlab defaults (precision auto, channels_last)": lambda: mnistlab_loop(
                    "cnn", subset, name, batch_size=batch),
            }
            results = measure(candidates, repeats)
            report(f"CNN preset {name}, batch {batch}, {steps} steps on {dataset.name}", results, EXAMPLE)


GAN_SETTINGS = {  # key → (row, overrides); the first row is the baseline of the ratios
    "fp32-nchw": ("fp32, NCHW", dict(precision="fp32", channels_last=False)),
    "bf16-nchw": ("bf16 autocast, NCHW", dict(precision="bf16", channels_last=False)),
    "fp32-cl": ("fp32, channels_last", dict(precision="fp32", channels_last=True)),
    "bf16-cl": ("bf16 autocast, channels_last", dict(precision="bf16", channels_last=True)),
    "defaults": ("preset defaults", {}),
}
STEP_ALONE = "step-alone"


def gan_step_alone(dataset: Dataset, preset_name: str) -> float:
    """Images/second of the preset's own `GANTrainer.step` at its defaults, called back to back with no loop
    around it: an epoch's worth of steps to warm up (as the loop rows' first epoch), then as many timed."""
    from mnistlab.train import loop
    from mnistlab.train.gan import GANTrainer, load_data

    config = with_overrides(preset("gan", preset_name), {"eval_every": 0})
    batch = config.train.batch_size
    steps = len(dataset.train) // batch  # whole batches, as the loop's epoch
    with tempfile.TemporaryDirectory() as tmp:
        start = loop.start_run("gan", config, {"out": f"{tmp}/run"}, None, dataset, False, load_data)
        trainer = GANTrainer(start, None)
        trainer.train()
        order = loop.epoch_order(len(dataset.train), config.run.seed, 0, start.device)

        def run_steps() -> None:
            for step in range(steps):
                trainer.step(order[step * batch : (step + 1) * batch], step, 2 * steps)

        run_steps()
        began = time.perf_counter()
        run_steps()
        return steps * batch / (time.perf_counter() - began)


def bench_gan(dataset: Dataset, repeats: int, presets: list[str], steps: int, settings: list[str]) -> None:
    for name in presets:
        batch = preset("gan", name).train.batch_size
        subset = _head(dataset, steps * batch)
        candidates: dict[str, Callable[[], float]] = {}
        for key in dict.fromkeys(["fp32-nchw", *settings]):  # the baseline first, once
            if key == STEP_ALONE:
                candidates["preset defaults, step alone (no loop)"] = lambda: gan_step_alone(subset, name)
            else:
                row, overrides = GAN_SETTINGS[key]
                candidates[row] = lambda overrides=overrides: mnistlab_loop("gan", subset, name, **overrides)
        report(f"GAN preset {name}, batch {batch}, {len(subset.train) // batch} steps on {dataset.name}",
               measure(candidates, repeats), GAN_SETTINGS["fp32-nchw"][0])


def bench_peak(repeats: int) -> None:
    """GFLOP/s of kernels big enough to run at the CPU's peak, fp32 against bf16: about the most that bf16
    autocast can gain here (AVX-512-BF16 alone doubles the multiply-adds per instruction; AMX does more)."""
    n, batch, channels, size = 2048, 32, 128, 28

    def matmul(dtype: torch.dtype) -> Callable[[], torch.Tensor]:
        a = torch.randn(n, n, dtype=dtype)
        return lambda: a @ a

    def conv(dtype: torch.dtype) -> Callable[[], torch.Tensor]:
        x = torch.randn(batch, channels, size, size, dtype=dtype).to(memory_format=torch.channels_last)
        w = torch.randn(channels, channels, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
        return lambda: F.conv2d(x, w, padding=1)

    def gflops(make: Callable[[torch.dtype], Callable[[], torch.Tensor]], dtype: torch.dtype, flops: float) -> float:
        fn = make(dtype)
        fn()  # the first call picks and prepares the kernel
        began = time.perf_counter()
        for _ in range(5):
            fn()
        return 5 * flops / (time.perf_counter() - began) / 1e9

    cases = {f"matmul {n}x{n}x{n}": (matmul, 2 * n**3),
             f"conv 3x3 {channels}->{channels}, {batch}x{size}x{size}, channels_last": (
                 conv, 2 * batch * channels * channels * 9 * size * size)}
    print(f"\n{'kernel':<54}{'fp32 GFLOP/s':>14}{'bf16 GFLOP/s':>14}{'bf16 / fp32':>13}")
    with torch.no_grad():
        for name, (make, flops) in cases.items():
            results = measure({"fp32": lambda: gflops(make, torch.float32, flops),
                               "bf16": lambda: gflops(make, torch.bfloat16, flops)}, repeats)
            fp32, bf16 = statistics.median(results["fp32"]), statistics.median(results["bf16"])
            print(f"{name:<54}{fp32:>14.0f}{bf16:>14.0f}{bf16 / fp32:>12.2f}x")


def _head(dataset: Dataset, n: int) -> Dataset:
    from dataclasses import replace

    from mnistlab.data.datasets import Split

    train = Split(dataset.train.images[:n], dataset.train.labels[:n])
    return replace(dataset, train=train, val=None, test=Split(dataset.test.images[:1000], dataset.test.labels[:1000]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["cnn", "gan", "peak", "all"])
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="data to train on (default: fashion-mnist, 60,000 images; falls back to mnist-sample)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default: 3)")
    parser.add_argument("--cnn-presets", default="seed", help="comma-separated (default: seed)")
    parser.add_argument("--batch-sizes", default="100,512", help="CNN batch sizes, comma-separated (default: 100,512)")
    parser.add_argument("--gan-presets", default="seed,default", help="comma-separated (default: seed,default)")
    parser.add_argument("--gan-steps", type=int, default=120, help="GAN steps per epoch (default: 120)")
    gan_rows = [*GAN_SETTINGS, STEP_ALONE]
    parser.add_argument("--gan-settings", default=",".join(gan_rows),
                        help=f"GAN rows, comma-separated, fp32-nchw always (default: all of {','.join(gan_rows)})")
    args = parser.parse_args(argv)
    settings = args.gan_settings.split(",")
    if unknown := [s for s in settings if s not in gan_rows]:
        parser.error(f"--gan-settings: unknown {', '.join(unknown)}; choose from {', '.join(gan_rows)}")
    if args.gan_steps < 1:
        parser.error(f"--gan-steps must be at least 1, got {args.gan_steps}")

    from mnistlab.errors import DataError

    try:
        dataset = load_dataset(args.dataset, val_size=0, download=False)
    except DataError as e:
        print(f"{args.dataset} unavailable ({e}); using mnist-sample")
        dataset = load_dataset("mnist-sample", val_size=0)
    from mnistlab.device import autocast_dtype, cpu_has_fast_bf16

    print(f"mnistlab bench on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; fast bf16 CPU: {cpu_has_fast_bf16()}; "
          f"auto precision here: {autocast_dtype(torch.device('cpu'), 'auto')}; data: {dataset.name}")
    if args.what in ("peak", "all"):
        bench_peak(args.repeats)
    if args.what in ("cnn", "all"):
        bench_cnn(dataset, args.repeats, args.cnn_presets.split(","), [int(b) for b in args.batch_sizes.split(",")])
    if args.what in ("gan", "all"):
        bench_gan(dataset, args.repeats, args.gan_presets.split(","), args.gan_steps, settings)


if __name__ == "__main__":
    main()
