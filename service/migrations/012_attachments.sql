-- Attachments: files, images and voice messages stored outside the database (local directory or an
-- S3-compatible bucket), described here and authorized like messages. An attachment belongs to a
-- conversation from upload on and to one message once attached. Removing an attachment row queues its
-- stored objects in attachment_deletions; the cleanup job empties that queue from storage.

create table public.attachments (
  id              uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  uploader_id     uuid references public.profiles (id) on delete set null,
  message_id      uuid references public.messages (id) on delete set null,
  status          text not null default 'pending' check (status in ('pending', 'ready')),
  kind            text check (kind in ('image', 'audio', 'file')),
  filename        text not null check (char_length(filename) between 1 and 255),
  content_type    text,
  size_bytes      bigint check (size_bytes >= 0),
  width           integer,
  height          integer,
  duration_ms     integer,
  storage_key     text not null unique,
  thumbnail_key   text unique,
  attached_at     timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  check ((message_id is null) or status = 'ready')
);
create index idx_attachments_conversation on public.attachments (conversation_id, created_at desc);
create index idx_attachments_message on public.attachments (message_id) where message_id is not null;
create index idx_attachments_uploader on public.attachments (uploader_id);
create index idx_attachments_unattached on public.attachments (created_at) where message_id is null;

-- Stored objects waiting to be removed from storage (the cleanup queue): internal, outside the API's schema.
create table msgops_meta.attachment_deletions (
  storage_key text primary key,
  queued_at   timestamptz not null default now()
);

create or replace function public.queue_attachment_deletion() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into msgops_meta.attachment_deletions (storage_key) values (old.storage_key) on conflict do nothing;
  if old.thumbnail_key is not null then
    insert into msgops_meta.attachment_deletions (storage_key) values (old.thumbnail_key) on conflict do nothing;
  end if;
  return old;
end
$$;
create trigger attachments_queue_deletion after delete on public.attachments
  for each row execute function public.queue_attachment_deletion();

-- A message deleted (soft) takes its attachments with it.
create or replace function public.delete_attachments_of_deleted_message() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.attachments where message_id = new.id;
  return null;
end
$$;
create trigger messages_delete_attachments after update of is_deleted on public.messages
  for each row when (new.is_deleted and not old.is_deleted)
  execute function public.delete_attachments_of_deleted_message();

create trigger update_attachments_updated_at before update on public.attachments
  for each row execute function public.update_updated_at_column();

-- Attach: the uploader puts a ready attachment on their own message in the same conversation.
create or replace function public.attach_to_message(attachment uuid, message uuid) returns boolean
language plpgsql security invoker
set search_path = ''
as $$
declare n integer;
begin
  update public.attachments a set message_id = message, attached_at = now()
   where a.id = attachment and a.uploader_id = (select auth.uid()) and a.status = 'ready'
     and a.message_id is null
     and exists (select 1 from public.messages m where m.id = message and m.sender_id = (select auth.uid())
                 and m.conversation_id = a.conversation_id and not m.is_deleted);
  get diagnostics n = row_count;
  return n = 1;
end
$$;

alter table public.attachments enable row level security;
alter table public.attachments force row level security;

grant select, delete on public.attachments to authenticated;
grant insert (id, conversation_id, uploader_id, filename, storage_key) on public.attachments to authenticated;
grant update (message_id, attached_at, status, kind, content_type, size_bytes, width, height, duration_ms,
              thumbnail_key, filename) on public.attachments to authenticated;
grant all on public.attachments to service_role;
grant execute on function public.attach_to_message(uuid, uuid) to authenticated, service_role;

-- Members of the conversation see its attachments; members upload; the uploader changes and deletes theirs.
create policy attachments_select on public.attachments for select to authenticated
  using (public.is_conversation_member(conversation_id));
create policy attachments_insert on public.attachments for insert to authenticated
  with check (uploader_id = (select auth.uid()) and public.is_conversation_member(conversation_id));
create policy attachments_update on public.attachments for update to authenticated
  using (uploader_id = (select auth.uid())) with check (uploader_id = (select auth.uid())
         and public.is_conversation_member(conversation_id));
create policy attachments_delete on public.attachments for delete to authenticated
  using (uploader_id = (select auth.uid()));
