"""ASGI middleware in front of the routes: the body size limit, and the pixels route's old address."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 2**20  # bytes: a digit needs far less, and this keeps every upload in memory


class BodyLimit:
    """Request bodies over `limit` bytes get 413 with a JSON explanation.

    Refused before reading when Content-Length declares too much; counted as they arrive otherwise, so a
    chunked body or a lying header gains nothing. (FastAPI's own `max_body_size` answers the first case with
    plain text, unlike every other error here.)
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
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
