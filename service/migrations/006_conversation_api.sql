-- Conversation API: the send path as one statement, and the DM matrix applied to group membership.

-- Send a message in one round trip: idempotent replay by (sender, client_msg_id), membership,
-- rate limits, thread parent, insert. SECURITY INVOKER: RLS decides every read and the insert.
-- Errors the API turns into answers: P0002 not a member (404), P0429 rate limited (429, the
-- seconds to wait in DETAIL), 23503 parent not in this conversation (422), 23505 the same
-- client_msg_id was used in another conversation or by a concurrent send (409 / replay).
create or replace function public.send_conversation_message(
  conv uuid, body text, msg_client_id text, parent uuid,
  limit_actions text[], limit_hits integer[], limit_windows integer[])
returns table (id uuid, conversation_id uuid, sender_id uuid, seq bigint, client_msg_id text, parent_id uuid,
               content text, is_deleted boolean, edited_at timestamptz, created_at timestamptz,
               reactions jsonb, reply_count bigint, created boolean)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  me uuid := (select auth.uid());
  prior public.messages%rowtype;
  retry integer;
begin
  if msg_client_id is not null then
    select * into prior from public.messages m where m.sender_id = me and m.client_msg_id = msg_client_id;
    if found then
      if prior.conversation_id <> conv then
        raise exception 'client_msg_id was already used in another conversation' using errcode = '23505';
      end if;
      return query
        select prior.id, prior.conversation_id, prior.sender_id, prior.seq, prior.client_msg_id, prior.parent_id,
               prior.content, prior.is_deleted, prior.edited_at, prior.created_at,
               coalesce((select jsonb_object_agg(r.emoji, r.n)
                           from (select x.emoji, count(*) as n from public.message_reactions x
                                  where x.message_id = prior.id group by x.emoji) r), '{}'::jsonb),
               (select count(*) from public.messages c where c.parent_id = prior.id),
               false;
      return;
    end if;
  end if;
  if not public.is_conversation_member(conv) then
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
     and not exists (select 1 from public.messages p where p.id = parent and p.conversation_id = conv) then
    raise exception 'parent message is not in this conversation' using errcode = '23503';
  end if;
  return query
    insert into public.messages as m (conversation_id, sender_id, client_msg_id, parent_id, content)
    values (conv, me, msg_client_id, parent, body)
    returning m.id, m.conversation_id, m.sender_id, m.seq, m.client_msg_id, m.parent_id, m.content,
              m.is_deleted, m.edited_at, m.created_at, '{}'::jsonb, 0::bigint, true;
end
$$;

grant execute on function public.send_conversation_message(uuid, text, text, uuid, text[], integer[], integer[])
  to authenticated, service_role;

-- A group owner adds only people they could message directly: otherwise a group would be a way
-- around the DM matrix (an attendee could pull a dealer into a "group" of two).
alter policy conversation_members_insert on public.conversation_members
  with check (
    exists (select 1 from public.conversations c
             where c.id = conversation_id and c.kind = 'group' and c.created_by = (select auth.uid()))
    and (user_id = (select auth.uid()) or public.can_user_send_dm((select auth.uid()), user_id)));

