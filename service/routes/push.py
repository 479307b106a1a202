"""Web push subscriptions: one per device; notifications reach users without an open socket."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from service.db import fetch_all, fetch_one
from service.deps import CurrentUser, State, parse_uuid
from service.state import AppState

router = APIRouter(tags=["push"])


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(min_length=1, max_length=200, description="the browser's P-256 public key, base64url")
    auth: str = Field(min_length=1, max_length=100, description="the browser's auth secret, base64url")


class SubscriptionIn(BaseModel):
    """What `PushManager.subscribe()` returns in the browser (`subscription.toJSON()`)."""

    endpoint: str = Field(min_length=1, max_length=2000)
    keys: SubscriptionKeys


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    endpoint: str
    created_at: datetime
    last_success_at: datetime | None = None


class VapidKey(BaseModel):
    public_key: str = Field(description="applicationServerKey for PushManager.subscribe()")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sender(state: AppState) -> object:
    if state.push is None:
        raise HTTPException(404, detail="web push is turned off on this service")
    return state.push


@router.get("/push/vapid-public-key", response_model=VapidKey, responses={404: {"description": "push is off"}})
async def vapid_public_key(user: CurrentUser, state: State) -> VapidKey:
    """The service's VAPID public key, for the browser's subscription."""
    sender = _sender(state)
    return VapidKey(public_key=sender.public_key)  # type: ignore[attr-defined]


@router.post("/push/subscriptions", response_model=SubscriptionOut, status_code=201,
             responses={404: {"description": "push is off"}, 422: {"description": "endpoint not allowed"}})
async def subscribe(body: SubscriptionIn, request: Request, user: CurrentUser, state: State) -> SubscriptionOut:
    """Register this device for web push (the same endpoint again updates its keys)."""
    _sender(state)
    url = urlsplit(body.endpoint)
    local_http = (url.scheme == "http" and state.settings.push.allow_http_endpoints
                  and _is_loopback(url.hostname or ""))
    if not url.hostname or (url.scheme != "https" and not local_http):
        allowed = "an https URL (or http on loopback)" if state.settings.push.allow_http_endpoints else "an https URL"
        raise HTTPException(422, detail=f"endpoint must be {allowed} of a push service")
    async with state.db.transaction(user) as conn:
        row = await fetch_one(
            conn, """insert into public.push_subscriptions (user_id, endpoint, p256dh, auth, user_agent)
                     values ((select auth.uid()), %s, %s, %s, %s)
                     on conflict (endpoint) do update set p256dh = excluded.p256dh, auth = excluded.auth,
                       user_agent = excluded.user_agent
                     returning id, endpoint, created_at, last_success_at""",
            (body.endpoint, body.keys.p256dh, body.keys.auth, (request.headers.get("user-agent") or "")[:500]))
    assert row is not None
    return SubscriptionOut.model_validate(row)


@router.get("/push/subscriptions", response_model=list[SubscriptionOut])
async def list_subscriptions(user: CurrentUser, state: State) -> list[SubscriptionOut]:
    async with state.db.transaction(user) as conn:
        rows = await fetch_all(conn, "select id, endpoint, created_at, last_success_at from public.push_subscriptions "
                                     "where user_id = (select auth.uid()) order by created_at")
    return [SubscriptionOut.model_validate(r) for r in rows]


@router.delete("/push/subscriptions/{subscription_id}", status_code=204,
               responses={404: {"description": "no such subscription of yours"}})
async def unsubscribe(subscription_id: str, user: CurrentUser, state: State) -> Response:
    sid = parse_uuid(subscription_id)
    async with state.db.transaction(user) as conn:
        row = await fetch_one(conn, "delete from public.push_subscriptions where id = %s returning id", (sid,))
    if row is None:
        raise HTTPException(404, detail="subscription not found")
    return Response(status_code=204)
