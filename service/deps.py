"""FastAPI dependencies: the app state, the current user (`get_current_user`), rate limits."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service import metrics, sanitize
from service.auth import AuthError, Claims
from service.db import Conn
from service.state import AppState

_bearer = HTTPBearer(auto_error=False, description="A JWT from your identity provider (HS256, or RS256/ES256 via JWKS)")
_MAX_KNOWN_USERS = 200_000


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.msgops
    return state


async def get_state(request: Request) -> AppState:
    # async: a plain `def` dependency would be run in the threadpool on every request
    return app_state(request)


def unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, detail=reason, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    """Verify the bearer token and make sure the caller has a profile row."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("missing bearer token")
    return await verified_user(app_state(request), credentials.credentials)


async def verified_user(state: AppState, token: str) -> Claims:
    """The token's claims (401 unless it verifies), with a profile row for the caller."""
    try:
        claims = state.verifier.verify(token)
    except AuthError as exc:
        raise unauthorized(str(exc)) from None
    if not claims.is_service and claims.sub not in state.known_users:
        await ensure_profile(state, claims)
    return claims


async def ensure_profile(state: AppState, claims: Claims) -> None:
    name = sanitize.display_name(claims.name)  # other members see it: the same cleaning as any text
    # One round trip: the function takes the caller's role and claims for its own transaction.
    await state.db.fetch_one_as(claims, "select public.ensure_profile_as(%s, %s, %s, %s, %s)",
                                (claims.sub, claims.email, name))
    if len(state.known_users) > _MAX_KNOWN_USERS:
        state.known_users.clear()
    assert claims.sub is not None
    state.known_users.add(claims.sub)


async def require_service_role(claims: Annotated[Claims, Depends(get_current_user)]) -> Claims:
    if not claims.is_service:
        raise HTTPException(403, detail="service role only")
    return claims


async def enforce_rate_limit(state: AppState, conn: Conn, action: str) -> None:
    """Count one `action` for the transaction's user; 429 with Retry-After when over the limit."""
    limit = state.settings.rate_limits.get(action)
    if limit is None:
        return
    cur = await conn.execute("select public.rate_limit_hit(%s, %s, %s) as retry", (action, limit.max_hits,
                                                                                   limit.window_seconds))
    row = await cur.fetchone()
    retry = int(row["retry"]) if row else 0
    if retry > 0:
        metrics.rate_limited.labels(action).inc()
        raise HTTPException(
            429, detail=f"rate limit for {action}: {limit.max_hits} per {limit.window_seconds}s; retry later",
            headers={"Retry-After": str(retry)},
        )


CurrentUser = Annotated[Claims, Depends(get_current_user)]
State = Annotated[AppState, Depends(get_state)]
ServiceUser = Annotated[Claims, Depends(require_service_role)]


def parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise HTTPException(404, detail="not found") from None
