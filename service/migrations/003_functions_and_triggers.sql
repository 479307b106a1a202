-- Triggers and functions. SECURITY DEFINER functions pin search_path to '' and qualify every name.

create or replace function public.update_updated_at_column() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

do $$
declare t text;
begin
  foreach t in array array['profiles', 'conversations', 'conversation_members', 'messages', 'communities',
                           'community_members', 'community_messages', 'broadcast_quotas', 'reported_messages']
  loop
    execute format('create trigger update_%1$s_updated_at before update on public.%1$I
                    for each row execute function public.update_updated_at_column()', t);
  end loop;
end
$$;

create or replace function public.update_community_member_count() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    update public.communities set member_count = member_count + 1 where id = new.community_id;
  elsif tg_op = 'DELETE' then
    update public.communities set member_count = member_count - 1 where id = old.community_id;
  end if;
  return null;
end
$$;

create trigger update_community_member_count
after insert or delete on public.community_members
for each row execute function public.update_community_member_count();

-- Membership helpers used by policies. SECURITY DEFINER so that a policy on a membership table
-- can ask about membership without recursing into its own policy.
create or replace function public.is_conversation_member(conv uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.conversation_members m
    where m.conversation_id = conv and m.user_id = (select auth.uid())
  )
$$;

create or replace function public.community_role(comm uuid) returns text
language sql stable security definer
set search_path = ''
as $$
  select m.role from public.community_members m
  where m.community_id = comm and m.user_id = (select auth.uid())
$$;

create or replace function public.app_role() returns text
language sql stable security definer
set search_path = ''
as $$
  select p.role from public.profiles p where p.id = (select auth.uid())
$$;

create or replace function public.can_user_send_dm(sender uuid, recipient uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.profiles s
    join public.profiles r on r.id = recipient
    join public.dm_permissions p on p.sender_role = s.role and p.recipient_role = r.role
    where s.id = sender
  )
$$;

-- Direct conversations are created only through this function: it enforces the DM matrix and
-- returns the existing conversation when the pair already has one.
create or replace function public.get_or_create_conversation(other_user uuid) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  key text;
  conv uuid;
begin
  if me is null then
    raise exception 'not authenticated' using errcode = '42501';
  end if;
  if other_user = me then
    raise exception 'cannot start a conversation with yourself' using errcode = '22023';
  end if;
  if not exists (select 1 from public.profiles where id = other_user) then
    raise exception 'no such user' using errcode = 'P0002';
  end if;
  if not public.can_user_send_dm(me, other_user) then
    raise exception 'direct messages from your role to this user are not allowed' using errcode = '42501';
  end if;
  key := least(me::text, other_user::text) || ':' || greatest(me::text, other_user::text);
  select id into conv from public.conversations where direct_key = key;
  if conv is not null then
    return conv;
  end if;
  insert into public.conversations (kind, created_by, direct_key)
  values ('direct', me, key)
  on conflict (direct_key) do nothing
  returning id into conv;
  if conv is null then  -- a concurrent call created it first
    select id into conv from public.conversations where direct_key = key;
    return conv;
  end if;
  insert into public.conversation_members (conversation_id, user_id, role)
  values (conv, me, 'owner'), (conv, other_user, 'member');
  return conv;
end
$$;

-- Group conversations: the creator becomes owner. Members are added by the owner (RLS).
create or replace function public.create_group_conversation(title text) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  conv uuid;
begin
  if me is null then
    raise exception 'not authenticated' using errcode = '42501';
  end if;
  insert into public.conversations (kind, title, created_by) values ('group', title, me) returning id into conv;
  insert into public.conversation_members (conversation_id, user_id, role) values (conv, me, 'owner');
  return conv;
end
$$;

-- Communities: the creator becomes owner in the same transaction.
create or replace function public.add_community_owner() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.community_members (community_id, user_id, role) values (new.id, new.created_by, 'owner');
  return null;
end
$$;

create trigger add_community_owner
after insert on public.communities
for each row execute function public.add_community_owner();

-- Per-conversation sequence numbers, assigned at insert under the conversation's row lock, so that
-- seq order is commit order within a conversation and clients can resume with since_seq.
create or replace function public.assign_message_seq() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.conversations
     set last_seq = last_seq + 1, last_message_at = now(), archived_at = null  -- activity unarchives
   where id = new.conversation_id
  returning last_seq into new.seq;
  -- the sender has read their own message
  update public.conversation_members
     set last_read_seq = new.seq
   where conversation_id = new.conversation_id and user_id = new.sender_id;
  return new;
end
$$;

create trigger assign_message_seq
before insert on public.messages
for each row execute function public.assign_message_seq();

create or replace function public.assign_community_message_seq() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.communities set last_seq = last_seq + 1 where id = new.community_id
  returning last_seq into new.seq;
  return new;
end
$$;

create trigger assign_community_message_seq
before insert on public.community_messages
for each row execute function public.assign_community_message_seq();

-- Moderation deletes leave a trace.
create or replace function public.audit_message_deletion() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.is_deleted and not old.is_deleted and new.deleted_by is distinct from old.sender_id then
    insert into public.audit_log (actor_id, action, subject, detail)
    values (new.deleted_by, 'message.moderator_delete', tg_table_name || ':' || new.id,
            jsonb_build_object('sender_id', old.sender_id));
  end if;
  return null;
end
$$;

create trigger audit_message_deletion after update on public.messages
for each row execute function public.audit_message_deletion();
create trigger audit_community_message_deletion after update on public.community_messages
for each row execute function public.audit_message_deletion();

-- Fixed-window rate limit: count this hit and return 0, or the seconds until the window resets.
create or replace function public.rate_limit_hit(action text, max_hits integer, window_seconds integer)
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  started timestamptz;
  n integer;
begin
  if me is null or max_hits <= 0 then
    return 0;
  end if;
  insert into public.rate_limit_counters as c (user_id, action, window_start, hits)
  values (me, action, now(), 1)
  on conflict on constraint rate_limit_counters_pkey do update
     set hits = case when c.window_start <= now() - make_interval(secs => window_seconds) then 1 else c.hits + 1 end,
         window_start = case when c.window_start <= now() - make_interval(secs => window_seconds) then now()
                             else c.window_start end
  returning c.window_start, c.hits into started, n;
  if n > max_hits then
    return greatest(1, ceil(extract(epoch from (started + make_interval(secs => window_seconds) - now())))::integer);
  end if;
  return 0;
end
$$;

-- Broadcast with quota: the third pre-show broadcast of an organizer is refused. Parameters share
-- names with columns, so every reference is qualified and the conflict target named by constraint.
create or replace function public.send_broadcast(audience text, phase text, content text) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  my_role text;
  allowed integer;
  used_now integer;
  new_id uuid;
begin
  if me is null then
    raise exception 'not authenticated' using errcode = '42501';
  end if;
  select p.role into my_role from public.profiles p where p.id = me;
  select bp.quota into allowed from public.broadcast_permissions bp
   where bp.sender_role = my_role and bp.audience = send_broadcast.audience and bp.phase = send_broadcast.phase;
  if allowed is null then
    raise exception 'role % may not broadcast to % in %', my_role, send_broadcast.audience, send_broadcast.phase
      using errcode = '42501';
  end if;
  insert into public.broadcast_quotas as q (user_id, phase, used) values (me, send_broadcast.phase, 1)
  on conflict on constraint broadcast_quotas_pkey do update set used = q.used + 1
  returning q.used into used_now;
  if used_now > allowed then
    raise exception 'broadcast quota of % for % exhausted', allowed, send_broadcast.phase using errcode = 'P0429';
  end if;
  insert into public.broadcasts as b (sender_id, audience, phase, content)
  values (me, send_broadcast.audience, send_broadcast.phase, send_broadcast.content)
  returning b.id into new_id;
  return new_id;
end
$$;

-- Only the sender rewrites a message's text. Moderators and admins may remove it (content to null,
-- is_deleted), never put words in someone else's mouth. Owner connections (jobs) have no uid.
create or replace function public.guard_message_content() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.content is distinct from old.content and new.content is not null
     and (select auth.uid()) is not null and (select auth.uid()) is distinct from old.sender_id then
    raise exception 'only the sender may edit a message' using errcode = '42501';
  end if;
  return new;
end
$$;

create trigger guard_message_content before update on public.messages
for each row execute function public.guard_message_content();
create trigger guard_community_message_content before update on public.community_messages
for each row execute function public.guard_message_content();

grant execute on function public.is_conversation_member(uuid), public.community_role(uuid), public.app_role(),
  public.can_user_send_dm(uuid, uuid), public.get_or_create_conversation(uuid),
  public.create_group_conversation(text), public.rate_limit_hit(text, integer, integer),
  public.send_broadcast(text, text, text)
  to authenticated, service_role;
-- Trigger functions are not for calling directly.
revoke execute on function public.update_updated_at_column(), public.update_community_member_count(),
  public.add_community_owner(), public.assign_message_seq(), public.assign_community_message_seq(),
  public.audit_message_deletion(), public.guard_message_content()
  from public, anon, authenticated;
