"""JSON responses rendered by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from engine.store import _default


class ORJSON(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default,
                            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
