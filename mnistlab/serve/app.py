"""The web app's server: `create_app` loads one classifier and one generator and serves them with the routes
in `routes.py`; `serve` runs it with uvicorn (`mnistlab serve`).

FastAPI, uvicorn and python-multipart are the `serve` extra: they are imported once `_require_web_stack` has
found them, so that without them `mnistlab serve` says what to install instead of a traceback.

Hardening: an image upload over 10 MB (a full phone photo is 2–5 MB) and any other body over 1 MB get a
413 that a browser can read (`middleware.BodyLimit`); uploads are decoded in memory by `frame.load_image`,
which refuses decompression bombs from the header, before decoding, and are shrunk to about 2 megapixels
before they are read; no route has a path parameter and the page's files are read into memory here, so
nothing a request says reaches the file system.

Concurrency: the models are loaded once; decoding, preprocessing and the forward passes run in the threadpool
under `torch.inference_mode()`, with no lock, so the event loop keeps accepting requests. Predictions are
micro-batched (`batching.MicroBatcher`): requests arriving while the classifier is busy share its next call.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mnistlab.checkpoint import CHECKPOINT_NAME, read_checkpoint_header
from mnistlab.errors import MnistlabError, require_extra
from mnistlab.inference import Classifier, Generator, load

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).with_name("static")
WEB_STACK = ("fastapi", "uvicorn", "python_multipart")  # the `serve` extra, by import name


def _require_web_stack() -> None:
    require_extra("the web app", "serve", WEB_STACK)


def create_app(cnn: str | Path | None = None, gan: str | Path | None = None,
               gan_checkpoint: str | None = None, runs_dir: str | Path = "runs") -> FastAPI:
    """The app, serving the classifier `cnn` and the generator `gan` (run directories or checkpoints).

    Either may be None; its endpoints then answer 503 saying which flag would load one. `gan_checkpoint`
    picks the GAN run's file: "best", "last" or None, best when the run kept one (`inference.load`).
    `runs_dir` is where the digits a person teaches on the page, and the run taught them, are written.
    """
    _require_web_stack()
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError

    from mnistlab.serve.batching import MicroBatcher
    from mnistlab.serve.middleware import BodyLimit, ForwardJsonPredict
    from mnistlab.serve.routes import PAGE_FILES, api, page, validation_failed
    from mnistlab.serve.teaching import Teacher

    # fp32: on a CPU, bf16 autocast costs more than it saves on batches this small
    classifier = load(cnn, kind="cnn", precision="fp32") if cnn is not None else None
    generator = load(gan, kind="gan", checkpoint=gan_checkpoint) if gan is not None else None
    app = FastAPI(
        title="mnistlab", version="1",
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN; /openapi.json stays
        description="Read handwritten digits with a CNN; draw new ones with a DCGAN. The page at / uses it.",
    )
    app.state.batcher = MicroBatcher(classifier) if classifier else None
    app.state.generator = generator
    app.state.models = {"cnn": _describe(classifier) if classifier else None,
                        "gan": _describe(generator) if generator else None}
    app.state.page = {name: (STATIC / name).read_bytes() for name in PAGE_FILES}

    def adopt(run: Path) -> None:  # a run taught on the page: the server reads with it from now on
        taught = load(run, kind="cnn", precision="fp32")
        app.state.batcher, app.state.models["cnn"] = MicroBatcher(taught), _describe(taught)

    app.state.teacher = Teacher(Path(runs_dir), adopt)
    app.add_middleware(ForwardJsonPredict)
    app.add_middleware(BodyLimit)  # added last, so outermost: nothing reads a body before it counts
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.include_router(api)
    app.include_router(page)
    return app


def _describe(model: Classifier | Generator) -> dict[str, Any]:
    """What /api/models says about a loaded model, from its checkpoint's config and metrics history (the
    header: the weights are loaded already)."""
    header = read_checkpoint_header(model.path)
    history = header.state.get("metrics") or []
    info = {"path": str(model.path), "kind": header.kind, "preset": header.state["config"]["preset"],
            "dataset": model.dataset, "epochs": history[-1]["epoch"] if history else 0}
    if header.kind == "cnn":
        return info | {"test_acc": history[-1].get("test_acc") if history else None, "classes": model.classes}
    quality = next((m for m in reversed(history) if m.get("fcd") is not None), {})
    return info | {"fcd": quality.get("fcd"), "conditional": model.conditional}


def newest_runs(runs_dir: str | Path) -> dict[str, Path]:
    """{"cnn": run dir, "gan": run dir}: the last written checkpoint of each kind under `runs_dir`.

    Each candidate's kind comes from its safetensors header alone (`read_checkpoint_header`): no tensor is read.
    """
    found: dict[str, Path] = {}
    paths = Path(runs_dir).rglob(CHECKPOINT_NAME)
    for path in sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            kind = read_checkpoint_header(path).kind
        except MnistlabError:  # not a mnistlab checkpoint, damaged, or newer than this mnistlab: not a candidate
            continue
        found.setdefault(kind, path.parent)
        if len(found) == 2:
            break
    return found


def serve(cnn: str | Path | None = None, gan: str | Path | None = None, runs_dir: str | Path = "runs",
          host: str = "127.0.0.1", port: int = 8000, gan_checkpoint: str | None = None) -> None:
    """Run the app with uvicorn until Ctrl-C; without `cnn`/`gan`, serve the newest runs under `runs_dir`.
    `gan_checkpoint`: "best", "last" or None, the GAN run's best generator when it kept one."""
    _require_web_stack()
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
    app = create_app(cnn, gan, gan_checkpoint, runs_dir)
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
        if kind == "gan":  # which of the run's generators: its best or its last
            measured += f", {app.state.generator.checkpoint} checkpoint of epoch {info['epochs']}"
        print(f"{role}: {info['path']} ({kind}/{info['preset']} on {info['dataset']}, {measured})")
    print(f"open http://{f'[{host}]' if ':' in host else host}:{port}/  (Ctrl-C to stop)", flush=True)
    # No access log: the page predicts several times a second while someone draws. Errors are still logged.
    uvicorn.run(app, host=host, port=port, access_log=False)
