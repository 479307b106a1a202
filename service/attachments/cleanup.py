"""The attachment cleanup job: orphaned attachments go, then the queue of stored objects to remove
is emptied from storage.

Orphans: uploads never put on a message (after a grace period), attachments of deleted messages,
of messages that no longer exist, and unattached uploads of erased accounts. Deleting their rows
queues their objects (trigger in migration 012); objects are removed from storage before their queue
rows are deleted, in the same transaction, so a storage failure leaves them queued for the next run.
"""

from __future__ import annotations

from service.db import Conn
from service.settings import Settings
from service.storage import open_storage

_BATCH = 1000

_ORPHANS = """
delete from public.attachments a
 where (a.message_id is null and a.created_at < now() - make_interval(secs => %s))
    or (a.message_id is null and a.attached_at is not null)
    or (a.message_id is null and a.uploader_id is null)
    or exists (select 1 from public.messages m where m.id = a.message_id and m.is_deleted)
"""


async def cleanup_attachments(conn: Conn, settings: Settings) -> int:
    cur = await conn.execute(_ORPHANS, (settings.attachments.unattached_grace_s,))
    affected = max(cur.rowcount, 0)
    storage = open_storage(settings.attachments.storage)
    while True:
        cur = await conn.execute("select storage_key from msgops_meta.attachment_deletions order by queued_at "
                                 "limit %s for update skip locked", (_BATCH,))
        keys = [r["storage_key"] for r in await cur.fetchall()]
        if not keys:
            return affected
        for key in keys:
            await storage.delete(key)
        await conn.execute("delete from msgops_meta.attachment_deletions where storage_key = any(%s)", (keys,))
        affected += len(keys)
        if len(keys) < _BATCH:
            return affected
