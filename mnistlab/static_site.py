"""A page that needs no server: `mnistlab export RUN --web DIR` writes a static site that reads digits in the
browser with onnxruntime-web, from any static host or straight from `file://`, offline.

From `file://`, Chromium refuses module scripts and `fetch`, so everything travels in classic scripts: the
runtime (`ort.wasm.min.js`, taken from the pinned npm package), its WebAssembly and its module glue as
base64 (the page turns them into blob: URLs, which need no fetch), and the model as base64 beside its
classes. Nothing is loaded from elsewhere at run time.

The runtime comes from `npm pack onnxruntime-web@ORT_WEB_VERSION`, checked against its pinned SHA-512
(npm's integrity) and cached under the data root; only the three files the page needs are read out of the
tarball, by name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from mnistlab.errors import MnistlabError

ORT_WEB_VERSION = "1.20.1"
ORT_WEB_SHA512 = ("4de3c5e975692cbd6b59530897963d00205073208d15385938dfe380494d77d4"  # npm's dist.integrity,
                  "f16fbdc22041a5925858477504af5729e6bd2b6c623a9c3c30aecefd83b5a3a0")  # as hex
RUNTIME_FILES = {  # in the npm tarball -> in the site, and the global its base64 is given to (None: as it is)
    "package/dist/ort.wasm.min.js": ("ort.wasm.min.js", None),
    "package/dist/ort-wasm-simd-threaded.mjs": ("ort-glue.js", "ORT_GLUE"),
    "package/dist/ort-wasm-simd-threaded.wasm": ("ort-wasm.js", "ORT_WASM"),
}
PAGE = Path(__file__).parent / "serve" / "static_site"
MAX_TARBALL = 64 << 20  # the 1.20.1 tarball is 20 MB


def export_web(run: str | Path, out: str | Path, data_root: str | Path | None = None) -> dict[str, Any]:
    """Write the static site for a CNN run (or ensemble) into `out`, which must not exist or be empty.
    Returns the files written and the ONNX check's figure."""
    from mnistlab.data.datasets import dataset_root
    from mnistlab.export import export_onnx
    from mnistlab.inference import load

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MnistlabError(f"{out} exists and is not an empty directory: give a new directory for the site")
    classes = load(run, kind="cnn").classes  # a GAN run, or no run, is refused before anything is fetched
    runtime = ort_web_runtime(dataset_root(data_root) / "npm")
    with tempfile.TemporaryDirectory() as scratch:
        onnx = Path(scratch) / "cnn.onnx"
        result = export_onnx(run, onnx)
        model = {"onnx": base64.b64encode(onnx.read_bytes()).decode(), "classes": classes,
                 "source": str(result["source"])}
        staging = Path(scratch) / "site"
        staging.mkdir()
        for name in ("index.html", "page.js", "style.css"):
            shutil.copyfile(PAGE / name, staging / name)
        (staging / "model.js").write_text(f"window.MNISTLAB_MODEL = {json.dumps(model)};\n")
        for member, (name, variable) in RUNTIME_FILES.items():
            if variable is None:
                (staging / name).write_bytes(runtime[member])
            else:  # the glue and the wasm, as base64 in a classic script: from file:// nothing can be fetched
                (staging / name).write_text(f"window.{variable} = \"{base64.b64encode(runtime[member]).decode()}\";\n")
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            shutil.move(str(path), out / path.name)
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir()), "source": result["source"],
            "max_abs_diff": result["max_abs_diff"], "ort_web": ORT_WEB_VERSION}


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
