-- erase_user without deadlocks when users who share rooms are erased at once.
--
-- 009 locked the conversations and communities the user is a member of, in id order, and then changed
-- rows in other rooms too: the messages a user wrote (or deleted as a moderator) in a conversation they
-- have left, the conversation they created and left (created_by is set null), reactions, mentions,
-- notifications they caused, attachments, reports. The foreign-key actions of `delete from profiles`
-- lock those rows and the rooms they reference (FOR KEY SHARE), outside the id order, while another
-- erasure holds those rooms FOR UPDATE and waits for a room this one holds: SQLSTATE 40P01.
--
-- Now every room whose rows the erasure will change is locked first, conversations then communities,
-- each in id order. Two erasures that change a common row both lock its room first, so they serialize
-- there; locks are only ever taken in that one order, so they cannot wait for each other in a cycle.
-- What 009 guaranteed stays: the user's content goes (placeholders keep the others' sequence numbers),
-- and of several members erased at once the last one sees the others' deletions and removes the rooms
-- nobody is left in.

create or replace function public.erase_user(target uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  conversations_left uuid[];
  communities_left uuid[];
  conversations_touched uuid[];
  communities_touched uuid[];
  n_messages integer;
  n_community_messages integer;
begin
  if (select auth.role()) <> 'service_role' and (select auth.uid()) is distinct from target then
    raise exception 'only the user or the service role may erase a user' using errcode = '42501';
  end if;
  select coalesce(array_agg(conversation_id), '{}') into conversations_left
    from public.conversation_members where user_id = target;
  select coalesce(array_agg(community_id), '{}') into communities_left
    from public.community_members where user_id = target;
  -- Every room a row this erasure changes belongs to (memberships, content, what its foreign keys
  -- cascade to or set null).
  select coalesce(array_agg(distinct id), '{}') into conversations_touched from (
    select unnest(conversations_left) as id
    union all select conversation_id from public.messages where sender_id = target
    union all select conversation_id from public.messages where deleted_by = target
    union all select id from public.conversations where created_by = target
    union all select m.conversation_id from public.message_reactions r
                join public.messages m on m.id = r.message_id where r.user_id = target
    union all select m.conversation_id from public.message_mentions x
                join public.messages m on m.id = x.message_id where x.user_id = target
    union all select conversation_id from public.notifications where user_id = target
    union all select conversation_id from public.notifications where actor_id = target
    union all select conversation_id from public.conversation_notification_settings where user_id = target
    union all select conversation_id from public.attachments where uploader_id = target
    union all select m.conversation_id from public.reported_messages r
                join public.messages m on m.id = r.message_id where r.reporter_id = target or r.resolved_by = target
  ) rooms;
  select coalesce(array_agg(distinct id), '{}') into communities_touched from (
    select unnest(communities_left) as id
    union all select community_id from public.community_messages where sender_id = target
    union all select community_id from public.community_messages where deleted_by = target
    union all select id from public.communities where created_by = target
    union all select m.community_id from public.reported_messages r
                join public.community_messages m on m.id = r.community_message_id
                where r.reporter_id = target or r.resolved_by = target
  ) rooms;
  -- One order for everyone: conversations, then communities, each by id.
  perform 1 from public.conversations where id = any (conversations_touched) order by id for update;
  perform 1 from public.communities where id = any (communities_touched) order by id for update;
  update public.messages set content = null, is_deleted = true where sender_id = target and not is_deleted;
  get diagnostics n_messages = row_count;
  update public.community_messages set content = null, is_deleted = true where sender_id = target and not is_deleted;
  get diagnostics n_community_messages = row_count;
  delete from public.rate_limit_counters where user_id = target;
  delete from public.profiles where id = target;
  -- Conversations and communities nobody is left in go too.
  delete from public.conversations c where c.id = any (conversations_left)
     and not exists (select 1 from public.conversation_members m where m.conversation_id = c.id);
  delete from public.communities c where c.id = any (communities_left)
     and not exists (select 1 from public.community_members m where m.community_id = c.id);
  insert into public.audit_log (actor_id, action, subject, detail)
  values ((select auth.uid()), 'user.erase', 'profiles:' || target,
          jsonb_build_object('messages', n_messages, 'community_messages', n_community_messages));
  return jsonb_build_object('messages_erased', n_messages, 'community_messages_erased', n_community_messages);
end
$$;
