"""A page that needs no server: `mnistlab export RUN --web DIR` writes a static site that reads digits (and,
given a GAN run, draws them) in the browser with onnxruntime-web, from any static host or straight from
`file://`, offline.

From `file://`, Chromium refuses module scripts and `fetch`, so everything travels in classic scripts: the
runtime (`ort.wasm.min.js`, taken from the pinned npm package), its WebAssembly and its module glue as
base64 (the page turns them into blob: URLs, which need no fetch), and each model as base64 in a script of
its own, which the page adds only when it is used. `site.js` says what the site holds. The `.onnx` files
beside them are the same models, for anyone who wants them. Nothing is loaded from elsewhere at run time.

The reader ships in fp32 (the same answers as `predict`, to ~1e-6, "not a digit" included: the ONNX reader
carries the run's digitness) and, when it reads the run's test split at most QUANTISED_LOSS worse, in INT8
too (onnxruntime's dynamic quantisation of the network, weights in 8 bits, the digitness left in fp32),
which the page offers as a choice.

The runtime comes from `npm pack onnxruntime-web@ORT_WEB_VERSION`, checked against its pinned SHA-512
(npm's integrity) and cached under the data root; only the three files the page needs are read out of the
tarball, by name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab.errors import MnistlabError, one_line

ORT_WEB_VERSION = "1.20.1"
ORT_WEB_SHA512 = ("4de3c5e975692cbd6b59530897963d00205073208d15385938dfe380494d77d4"  # npm's dist.integrity,
                  "f16fbdc22041a5925858477504af5729e6bd2b6c623a9c3c30aecefd83b5a3a0")  # as hex
RUNTIME_FILES = {  # in the npm tarball -> in the site, and the global its base64 is given to (None: as it is)
    "package/dist/ort.wasm.min.js": ("ort.wasm.min.js", None),
    "package/dist/ort-wasm-simd-threaded.mjs": ("ort-glue.js", "ORT_GLUE"),
    "package/dist/ort-wasm-simd-threaded.wasm": ("ort-wasm.js", "ORT_WASM"),
}
PAGE = Path(__file__).parent / "serve" / "static_site"
SHARED = Path(__file__).parent / "serve" / "static" / "heatmap.js"  # "Why?"'s map, painted as the server's page does
MAX_TARBALL = 64 << 20  # the 1.20.1 tarball is 20 MB
QUANTISED_LOSS = 0.001  # the INT8 reader ships only if its test accuracy is at most 0.1 point below fp32's
CHECK_BATCH = 1000  # digits per onnxruntime call when measuring the test split


def export_web(run: str | Path, out: str | Path, gan: str | Path | None = None,
               data_root: str | Path | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """Write the static site into `out`, which must not exist or be empty: a CNN run's (or ensemble's)
    reader, with `gan` a GAN run's generator beside it; or, when `run` is a GAN run, the generator alone.
    `checkpoint` picks the GAN run's generator ("best", "last"; None: best when it kept one). Returns what
    was written: the files, each model's figures, and why an INT8 reader was left out."""
    from mnistlab.data.datasets import dataset_root
    from mnistlab.inference import Classifier, load

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MnistlabError(f"{out} exists and is not an empty directory: give a new directory for the site")
    first = load(run, checkpoint=None if gan else checkpoint)  # not a CNN or GAN run: refused before any fetch
    if isinstance(first, Classifier):
        reader, generator = first, (None if gan is None else load(gan, kind="gan", checkpoint=checkpoint))
    elif gan is not None:
        raise MnistlabError(f"{run} is a GAN run: give the CNN run first and the GAN run with --gan")
    else:
        reader, generator = None, first
    runtime = ort_web_runtime(dataset_root(data_root) / "npm")
    site: dict[str, Any] = {"reader": None, "generator": None}
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / "site"
        staging.mkdir()
        if reader is not None:
            site["reader"] = _reader_files(run, reader, staging, data_root)
        if generator is not None:
            site["generator"] = _generator_files(generator, staging)
        for name in ("index.html", "page.js", "style.css"):
            shutil.copyfile(PAGE / name, staging / name)
        shutil.copyfile(SHARED, staging / SHARED.name)
        (staging / "site.js").write_text(f"window.MNISTLAB_SITE = {json.dumps(site)};\n")
        for member, (name, variable) in RUNTIME_FILES.items():
            if variable is None:
                (staging / name).write_bytes(runtime[member])
            else:  # the glue and the wasm, as base64 in a classic script: from file:// nothing can be fetched
                (staging / name).write_text(f"window.{variable} = \"{base64.b64encode(runtime[member]).decode()}\";\n")
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            shutil.move(str(path), out / path.name)
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir()), "ort_web": ORT_WEB_VERSION, **site}


def _reader_files(run: str | Path, reader: Any, staging: Path, data_root: str | Path | None) -> dict[str, Any]:
    """The reader's ONNX (fp32, and INT8 when it holds its accuracy) into `staging`; what site.js says of it."""
    from mnistlab import ood
    from mnistlab.export import export_onnx

    fp32 = staging / "cnn.onnx"
    exported = export_onnx(run, fp32)
    models = [_model_entry("fp32", fp32, staging)]
    described = {"classes": reader.classes, "source": str(exported["source"]), "models": models,
                 "max_abs_diff": exported["max_abs_diff"], "int8_left_out": None,
                 # its answers as `predict` gives them: "not a digit" under 1 - keep, "unsure" under unsure
                 "keep": ood.KEEP, "unsure": ood.UNSURE}
    test = _test_split(reader, data_root)
    if test is None:
        described["int8_left_out"] = f"no test split of {reader.dataset} to check its accuracy on"
        return described
    models[0]["test_acc"] = _accuracy(fp32, *test)
    int8 = staging / "cnn-int8.onnx"
    try:
        _quantise(fp32, int8)
        accuracy = _accuracy(int8, *test)
    except Exception as e:  # noqa: BLE001 - the quantiser's or onnxruntime's failure costs the copy, not the site
        int8.unlink(missing_ok=True)
        described["int8_left_out"] = f"quantising failed: {one_line(e)}"
        return described
    if accuracy < models[0]["test_acc"] - QUANTISED_LOSS:
        int8.unlink()
        described["int8_left_out"] = (f"INT8 read {accuracy:.4f} of the test split against fp32's "
                                      f"{models[0]['test_acc']:.4f}, more than {QUANTISED_LOSS:.1%} worse")
    else:
        models.append(_model_entry("int8", int8, staging) | {"test_acc": accuracy})
    return described


def _generator_files(generator: Any, staging: Path) -> dict[str, Any]:
    """The generator's ONNX into `staging`; what site.js says of it: how to draw its input, read its output."""
    from mnistlab.export import export_onnx

    path = staging / "gan.onnx"
    exported = export_onnx(generator.path, path)
    gan = generator.gan
    return {"source": str(exported["source"]), "max_abs_diff": exported["max_abs_diff"],
            "noise": gan.config.noise, "nz": gan.config.nz,  # z: uniform on [-1,1] or standard normal
            "classes": gan.classes if gan.config.conditional else 0,  # then a one-hot this long, if any
            "asks_digits": generator.conditional,  # its one-hot is a digit (else a cluster it found)
            "shares": gan.cluster_shares.tolist() if gan.config.clusters else None,
            "real_range": generator.real_range, **_model_entry("gan", path, staging)}


def _model_entry(name: str, onnx: Path, staging: Path) -> dict[str, Any]:
    """Write `onnx` as base64 in a classic script beside it (the page's way in from file://)."""
    script = onnx.with_suffix(".js").name
    (staging / script).write_text(f"(window.MNISTLAB_ONNX ??= {{}})[{json.dumps(name)}] = "
                                  f"\"{base64.b64encode(onnx.read_bytes()).decode()}\";\n")
    return {"name": name, "onnx": onnx.name, "script": script, "bytes": onnx.stat().st_size}


def _test_split(reader: Any, data_root: str | Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's test split as the ONNX reader takes it, or None when it cannot be had here."""
    from mnistlab.evaluate import test_split_of

    try:
        test = test_split_of(reader, data_root).test
    except MnistlabError:
        return None
    return (test.images.numpy().astype(np.float32) / 255)[:, None], test.labels.numpy()


def _accuracy(onnx: Path, images: np.ndarray, labels: np.ndarray) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    read = [session.run(None, {"images": images[i:i + CHECK_BATCH]})[0].argmax(1)
            for i in range(0, len(images), CHECK_BATCH)]
    return float((np.concatenate(read) == labels).mean())


def _quantise(fp32: Path, int8: Path) -> None:
    """The network's weights in 8 bits, activations quantised as they come (no calibration set needed). Only
    what computes the logits: the digitness after it keeps fp32, since its distances through a precision
    matrix of widely spread entries would not survive 8 bits."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32)).graph
    made_by = {out: node for node in graph.node for out in node.output}
    network, pending = set(), ["logits"]
    while pending:  # every node the logits depend on
        node = made_by.get(pending.pop())
        if node is not None and node.name not in network:
            network.add(node.name)
            pending += list(node.input)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises a pre-processing step, on the root logger; not needed here
    try:
        quantize_dynamic(fp32, int8, weight_type=QuantType.QUInt8,
                         nodes_to_exclude=[node.name for node in graph.node if node.name not in network])
    finally:
        root.setLevel(level)


def ort_web_runtime(cache: Path) -> dict[str, bytes]:
    """The page's runtime files out of the pinned onnxruntime-web tarball (fetched with npm once, cached)."""
    tarball = cache / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
    digest = _sha512(tarball) if tarball.is_file() else None
    if digest != ORT_WEB_SHA512:  # not fetched yet, or damaged: fetch it (again) and check that
        _npm_pack(cache)
        digest = _sha512(tarball)
    if digest != ORT_WEB_SHA512:
        tarball.unlink(missing_ok=True)
        raise MnistlabError(f"onnxruntime-web {ORT_WEB_VERSION} from npm has SHA-512 {digest[:16]}..., not the "
                            f"pinned {ORT_WEB_SHA512[:16]}...: refused")
    files = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in RUNTIME_FILES:
            info = archive.getmember(member)  # by name only: nothing else in the tarball is read
            if not info.isfile() or info.size > MAX_TARBALL:
                raise MnistlabError(f"{tarball}: {member} is not a plain file of a sensible size")
            files[member] = archive.extractfile(info).read()
    return files


def _npm_pack(cache: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise MnistlabError("the static page takes onnxruntime-web from npm, and there is no npm here: "
                            "install Node.js (apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        done = subprocess.run([npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--pack-destination", scratch],
                              capture_output=True, text=True, timeout=600)
        packed = Path(scratch) / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
        if done.returncode != 0 or not packed.is_file() or packed.stat().st_size > MAX_TARBALL:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MnistlabError(f"npm pack onnxruntime-web@{ORT_WEB_VERSION} failed: {last}")
        packed.replace(cache / packed.name)  # whole, or not at all


def _sha512(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()
