"""ASGI middleware in front of the routes: the body size limits, and the pixels route's old address."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 2**20  # bytes: what JSON carries here (a digit's 28x28 pixels) is ~10 KB
MAX_UPLOAD = 10 * 2**20  # bytes: an image file, up to a full 12-megapixel phone photo (2–5 MB as JPEG)
UPLOAD_PATHS = ("/api/predict", "/api/read")  # the routes that take an image file, as multipart
DRAIN_LIMIT = 64 * 2**20  # bytes of a refused body read and dropped, so that the client can read the 413
CLOSE = {"Connection": "close"}


class BodyLimit:
    """Request bodies over their limit get 413 with a JSON explanation that a browser can read.

    The limit is `upload_limit` for a multipart upload to one of UPLOAD_PATHS, `limit` for any other body.
    A body that Content-Length declares too large is refused before the app sees it; others are counted as
    they arrive, so a chunked body or a lying header gains nothing. (FastAPI's own `max_body_size` answers
    the first case with plain text, unlike every other error here.)

    Either way, the rest of the body is read and dropped (up to DRAIN_LIMIT) before the answer, which says
    `Connection: close`: a socket closed with unread data in it is reset by the kernel, and a browser still
    uploading would report the reset, never the 413.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY, upload_limit: int = MAX_UPLOAD) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    def explain(self, is_upload: bool) -> str:
        if is_upload:
            return (f"the upload is over {self.upload_limit // 2**20} MB; send a smaller image (a photo shrunk "
                    "to about 2 megapixels loses nothing: the page does so itself)")
        return (f"the request body is over {self.limit // 2**20} MB; send 28x28 pixels as JSON, or an image file "
                f"as a multipart upload (up to {self.upload_limit // 2**20} MB) to {' or '.join(UPLOAD_PATHS)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        is_upload = scope["path"] in UPLOAD_PATHS and media == "multipart/form-data"
        limit = self.upload_limit if is_upload else self.limit
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            # A client that waits for "100 Continue" before sending has sent nothing: there is nothing to drain.
            if int(declared) <= DRAIN_LIMIT and headers.get("expect", "").lower() != "100-continue":
                await _drain(receive)
            response = JSONResponse({"detail": self.explain(is_upload)}, 413, headers=CLOSE)
            return await response(scope, receive, send)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # raised inside the endpoint's read: FastAPI answers it as it is
                if message.get("more_body"):
                    await _drain(receive)
                raise HTTPException(413, self.explain(is_upload), headers=CLOSE)
            return message

        await self.app(scope, counting_receive, send)


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of the request body, up to DRAIN_LIMIT bytes."""
    dropped = 0
    while dropped <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return  # the body's end, or the client went away
        dropped += len(message.get("body", b""))


class ForwardJsonPredict:
    """`POST /api/predict` with a JSON body goes to `/api/predict/pixels`.

    /api/predict took both an upload and JSON pixels before each got its own route; clients written then
    (scripts/load_test.py among them) keep working. Only the path changes: the pixels route validates as
    it would anyway.
    """

    def __init__(self, app: ASGIApp, old: str = "/api/predict", new: str = "/api/predict/pixels") -> None:
        self.app, self.old, self.new = app, old, new

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.old:
            media = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
            if media == "application/json":
                scope = {**scope, "path": self.new, "raw_path": self.new.encode()}
        await self.app(scope, receive, send)
