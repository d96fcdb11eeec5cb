"""Dependencies: the app's shared state and role checks, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from api.context import AppState


async def get_state(request: Request) -> AppState:  # async: sync deps cost a thread hop
    state: AppState = request.app.state.nb
    return state


State = Annotated[AppState, Depends(get_state)]


def role(name: str) -> Any:
    async def check(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
        st: AppState = request.app.state.nb
        key_id = st.keys.check(authorization, name)
        st.limiter.hit(key_id)
        return key_id

    return Depends(check)


Ingest = Annotated[str, role("ingest")]
Decide = Annotated[str, role("decide")]
Agent = Annotated[str, role("agent")]
Sales = Annotated[str, role("sales")]
Admin = Annotated[str, role("admin")]
