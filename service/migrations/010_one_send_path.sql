-- One send path for both kinds of room (conversations and communities), in one statement.
--
-- public.send_room_message() is the idempotent, rate-limited send for either kind: replay by
-- (sender, client_msg_id), membership, rate limits, thread parent, insert. SECURITY INVOKER: RLS
-- decides every read and the insert. Errors the API turns into answers:
--   P0002  the room is not visible to the caller, or was deleted meanwhile (404)
--   42501  a community the caller can see but has not joined (403)
--   P0429  rate limited (429; the seconds to wait in DETAIL)
--   23503  without a constraint name: the parent is not in this conversation (422);
--          on a sender_id foreign key: the sender's account was erased meanwhile (409)
--   23505  the client_msg_id was used in another room of the same kind (409)
-- It answers with the columns of both kinds; the other kind's id is null.
-- The message a sender stored earlier under this client_msg_id (none: no row), as a replay.
create or replace function public.replay_room_message(room_kind text, me uuid, msg_client_id text)
returns table (id uuid, conversation_id uuid, community_id uuid, sender_id uuid, seq bigint, client_msg_id text,
               parent_id uuid, content text, is_deleted boolean, deleted_by uuid, edited_at timestamptz,
               created_at timestamptz, updated_at timestamptz, reactions jsonb, reply_count bigint,
               created boolean)
language plpgsql stable
set search_path = ''
as $$
#variable_conflict use_column
begin
  if room_kind = 'community' then
    return query
      select m.id, null::uuid, m.community_id, m.sender_id, m.seq, m.client_msg_id, null::uuid, m.content,
             m.is_deleted, m.deleted_by, m.edited_at, m.created_at, m.updated_at, '{}'::jsonb, 0::bigint, false
        from public.community_messages m where m.sender_id = me and m.client_msg_id = msg_client_id;
  else
    return query
      select m.id, m.conversation_id, null::uuid, m.sender_id, m.seq, m.client_msg_id, m.parent_id, m.content,
             m.is_deleted, m.deleted_by, m.edited_at, m.created_at, m.updated_at,
             coalesce((select jsonb_object_agg(r.emoji, r.n)
                         from (select x.emoji, count(*) as n from public.message_reactions x
                                where x.message_id = m.id group by x.emoji) r), '{}'::jsonb),
             (select count(*) from public.messages c where c.parent_id = m.id),
             false
        from public.messages m where m.sender_id = me and m.client_msg_id = msg_client_id;
  end if;
end
$$;

create or replace function public.send_room_message(
  room_kind text, room uuid, body text, msg_client_id text, parent uuid,
  limit_actions text[], limit_hits integer[], limit_windows integer[])
returns table (id uuid, conversation_id uuid, community_id uuid, sender_id uuid, seq bigint, client_msg_id text,
               parent_id uuid, content text, is_deleted boolean, deleted_by uuid, edited_at timestamptz,
               created_at timestamptz, updated_at timestamptz, reactions jsonb, reply_count bigint,
               created boolean)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  me uuid := (select auth.uid());
  community boolean := room_kind = 'community';
  prior_room uuid;
  retry integer;
begin
  if room_kind is null or room_kind not in ('conversation', 'community') then
    raise exception 'unknown room kind %', room_kind using errcode = '22023';
  end if;
  if community and parent is not null then
    raise exception 'community messages have no threads' using errcode = '22023';
  end if;
  -- A retry: answer with the first message (its id must not name another room). Sends with the
  -- same (sender, client_msg_id) take turns here, so a concurrent retry waits for the first to
  -- commit and then finds its message: the unique index never has to refuse an insert, whose BEFORE
  -- trigger would already have taken a seq.
  if msg_client_id is not null then
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(me::text || ':' || msg_client_id, 0));
    if community then
      select m.community_id into prior_room from public.community_messages m
       where m.sender_id = me and m.client_msg_id = msg_client_id;
    else
      select m.conversation_id into prior_room from public.messages m
       where m.sender_id = me and m.client_msg_id = msg_client_id;
    end if;
    if found then
      if prior_room <> room then
        raise exception 'client_msg_id was already used in another %', room_kind using errcode = '23505';
      end if;
      return query select * from public.replay_room_message(room_kind, me, msg_client_id);
      return;
    end if;
  end if;
  if community then
    if public.community_role(room) is null then
      if exists (select 1 from public.communities c where c.id = room) then
        raise exception 'join the community to send messages' using errcode = '42501';
      end if;
      raise exception 'community not found' using errcode = 'P0002';
    end if;
  elsif not public.is_conversation_member(room) then
    raise exception 'conversation not found' using errcode = 'P0002';
  end if;
  for i in 1 .. coalesce(array_length(limit_actions, 1), 0) loop
    retry := public.rate_limit_hit(limit_actions[i], limit_hits[i], limit_windows[i]);
    if retry > 0 then
      raise exception 'rate limit for %: % per %s; retry later', limit_actions[i], limit_hits[i], limit_windows[i]
        using errcode = 'P0429', detail = retry::text;
    end if;
  end loop;
  if parent is not null
     and not exists (select 1 from public.messages p where p.id = parent and p.conversation_id = room) then
    raise exception 'parent message is not in this conversation' using errcode = '23503';
  end if;
  if community then
    return query
      insert into public.community_messages as m (community_id, sender_id, client_msg_id, content)
      values (room, me, msg_client_id, body)
      returning m.id, null::uuid, m.community_id, m.sender_id, m.seq, m.client_msg_id, null::uuid, m.content,
                m.is_deleted, m.deleted_by, m.edited_at, m.created_at, m.updated_at, '{}'::jsonb, 0::bigint, true;
  else
    return query
      insert into public.messages as m (conversation_id, sender_id, client_msg_id, parent_id, content)
      values (room, me, msg_client_id, parent, body)
      returning m.id, m.conversation_id, null::uuid, m.sender_id, m.seq, m.client_msg_id, m.parent_id, m.content,
                m.is_deleted, m.deleted_by, m.edited_at, m.created_at, m.updated_at, '{}'::jsonb, 0::bigint, true;
  end if;
end
$$;

grant execute on function public.send_room_message(text, uuid, text, text, uuid, text[], integer[], integer[])
  to authenticated, service_role;
grant execute on function public.replay_room_message(text, uuid, text) to authenticated, service_role;

-- The same send as the caller of a request, in one statement: it takes the request's role and JWT
-- claims for its own transaction (set_config(..., true)), so an autocommit statement is the whole
-- transaction and a send costs one round trip. Only the service's connecting role may call it.
create or replace function public.send_room_message_as(
  db_role text, claims text, room_kind text, room uuid, body text, msg_client_id text, parent uuid,
  limit_actions text[], limit_hits integer[], limit_windows integer[])
returns table (id uuid, conversation_id uuid, community_id uuid, sender_id uuid, seq bigint, client_msg_id text,
               parent_id uuid, content text, is_deleted boolean, deleted_by uuid, edited_at timestamptz,
               created_at timestamptz, updated_at timestamptz, reactions jsonb, reply_count bigint,
               created boolean)
language plpgsql
-- No SET clause: it would undo the role change when the function returns.
as $$
begin
  perform pg_catalog.set_config('role', db_role, true), pg_catalog.set_config('request.jwt.claims', claims, true);
  return query select * from public.send_room_message(room_kind, room, body, msg_client_id, parent,
                                                      limit_actions, limit_hits, limit_windows);
end
$$;

revoke execute on function public.send_room_message_as(text, text, text, uuid, text, text, uuid, text[], integer[],
                                                        integer[]) from public;

-- A send that waited for the room's row lock while the room was deleted (the last member's account
-- was erased) finds no row to take its seq from: "not found", not a NULL seq.
create or replace function public.assign_message_seq() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.conversations
     set last_seq = last_seq + 1, last_message_at = now(), archived_at = null  -- activity unarchives
   where id = new.conversation_id
  returning last_seq into new.seq;
  if not found then
    raise exception 'conversation not found' using errcode = 'P0002';
  end if;
  -- the sender has read their own message
  update public.conversation_members
     set last_read_seq = new.seq
   where conversation_id = new.conversation_id and user_id = new.sender_id;
  return new;
end
$$;

create or replace function public.assign_community_message_seq() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.communities set last_seq = last_seq + 1 where id = new.community_id
  returning last_seq into new.seq;
  if not found then
    raise exception 'community not found' using errcode = 'P0002';
  end if;
  return new;
end
$$;

-- Replaced by send_room_message().
drop function public.send_conversation_message(uuid, text, text, uuid, text[], integer[], integer[]);
