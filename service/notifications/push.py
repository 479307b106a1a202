"""Web push (RFC 8030/8291/8292) with pywebpush: notifications for users with no open socket.

Each notification is claimed in the database before it is pushed (`pushed_at`), so several service
instances never push the same one twice. A push service answering 404 or 410 has dropped the
subscription: it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from service.db import fetch_all
from service.notifications.config import PushSettings, new_private_pem, public_key_b64
from service.state import AppState

log = logging.getLogger("service.push")

_CONCURRENCY = 16
_TIMEOUT_S = 10.0
_GONE = (404, 410)


def _payload(row: dict[str, Any]) -> str:
    import orjson

    who = row.get("actor_name") or "Someone"
    title = {"mention": f"{who} mentioned you", "reply": f"{who} replied to you",
             "direct": f"Message from {who}"}.get(row["kind"], f"New message from {who}")
    room = {k: str(row[k]) for k in ("conversation_id", "community_id") if row.get(k) is not None}
    return orjson.dumps({"type": "notification", "id": row["id"], "kind": row["kind"], "title": title,
                         "body": row.get("excerpt") or "", **room,
                         "message_id": str(row["message_id"]), "seq": row["seq"]}).decode()


class PushSender:
    def __init__(self, state: AppState, settings: PushSettings) -> None:
        from py_vapid import Vapid

        self.state = state
        self.settings = settings
        pem = settings.vapid_private_pem or new_private_pem()
        self.vapid = Vapid.from_pem(pem.encode())
        self.public_key = public_key_b64(pem)
        self.limit = asyncio.Semaphore(_CONCURRENCY)

    async def send(self, rows: list[dict[str, Any]]) -> None:
        """Push `rows` (notifications, with user_id) that no other instance has claimed yet."""
        async with self.state.db.privileged() as conn:
            subs = await fetch_all(conn, "select id, user_id, endpoint, p256dh, auth from public.push_subscriptions "
                                         "where user_id = any(%s)", (list({r["user_id"] for r in rows}),))
            by_user: dict[Any, list[dict[str, Any]]] = {}
            for sub in subs:
                by_user.setdefault(sub["user_id"], []).append(sub)
            # Claimed only where there is somewhere to push: most recipients have no subscription, and
            # a claim is a row update per notification.
            wanted = [r["id"] for r in rows if r["user_id"] in by_user]
            claimed = {r["id"] for r in await fetch_all(
                conn, "update public.notifications set pushed_at = now() where id = any(%s) and pushed_at is null "
                      "returning id", (wanted,))} if wanted else set()
        jobs = [self._one(sub, _payload(row)) for row in rows if row["id"] in claimed
                for sub in by_user.get(row["user_id"], [])]
        await asyncio.gather(*jobs)

    async def _one(self, sub: dict[str, Any], payload: str) -> None:
        async with self.limit:
            status = await asyncio.to_thread(self._post, sub, payload)
        async with self.state.db.privileged() as conn:
            if status in _GONE:
                await conn.execute("delete from public.push_subscriptions where id = %s", (sub["id"],))
                log.info("push subscription removed: the push service answered %s", status)
            elif status is not None and status < 300:
                await conn.execute("update public.push_subscriptions set last_success_at = now() where id = %s",
                                   (sub["id"],))

    def _post(self, sub: dict[str, Any], payload: str) -> int | None:
        from pywebpush import WebPushException, webpush

        info = {"endpoint": sub["endpoint"], "keys": {"p256dh": sub["p256dh"], "auth": sub["auth"]}}
        try:
            response = webpush(info, payload, vapid_private_key=self.vapid, vapid_claims={"sub": self.settings.subject},
                               ttl=self.settings.ttl_s, timeout=_TIMEOUT_S)
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in _GONE:
                log.warning("web push failed", extra={"status": status, "error": str(exc)[:200]})
            return status
        except Exception as exc:  # unreachable push service, bad keys: the notification stays in the feed
            log.warning("web push failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            return None
        return int(getattr(response, "status_code", 201))


def start(state: AppState) -> None:
    settings: PushSettings = state.settings.push
    if settings.enabled:
        state.push = PushSender(state, settings)
