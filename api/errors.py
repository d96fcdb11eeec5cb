"""Errors as `{"error": {"code", "message", "details"}}` with a fitting status."""

from __future__ import annotations

from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import ORJSON


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def invalid(errors: Any, prefix: tuple[str, ...] = ()) -> ApiError:
    """A 422 from pydantic's errors: the first one in the message, up to ten in the details
    (`prefix` is where the validated value sits in the request, as FastAPI reports it)."""
    details = [{"loc": [*prefix, *(str(p) for p in e.get("loc", ()))], "msg": e.get("msg", "")}
               for e in list(errors)[:10]]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    msg = f"{'.'.join(first['loc'][1:]) or 'body'}: {first['msg']}"
    return ApiError(422, "invalid_request", msg, details)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> ORJSON:
        return ORJSON(body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> ORJSON:
        err = invalid(exc.errors())
        return ORJSON(body(err.code, err.message, err.details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSON:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error")
        return ORJSON(body(code, str(exc.detail)), status_code=exc.status_code,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(redis.exceptions.RedisError)
    async def _redis(_: Request, exc: redis.exceptions.RedisError) -> ORJSON:
        return ORJSON(
            body("unavailable", "the data store is unavailable; retry shortly", type(exc).__name__),
            status_code=503, headers={"Retry-After": "1"})
