-- Right to be forgotten and data export. Erasing a user removes their profile and every row they
-- own; their messages in others' conversations stay as content-free placeholders (sender unknown),
-- so everyone else's history keeps its sequence numbers.

alter table public.messages alter column sender_id drop not null;
alter table public.messages drop constraint messages_sender_id_fkey,
  add constraint messages_sender_id_fkey foreign key (sender_id) references public.profiles (id) on delete set null;
alter table public.messages drop constraint messages_deleted_by_fkey,
  add constraint messages_deleted_by_fkey foreign key (deleted_by) references public.profiles (id) on delete set null;
alter table public.community_messages alter column sender_id drop not null;
alter table public.community_messages drop constraint community_messages_sender_id_fkey,
  add constraint community_messages_sender_id_fkey foreign key (sender_id) references public.profiles (id) on delete set null;
alter table public.community_messages drop constraint community_messages_deleted_by_fkey,
  add constraint community_messages_deleted_by_fkey foreign key (deleted_by) references public.profiles (id) on delete set null;
alter table public.conversations alter column created_by drop not null;
alter table public.conversations drop constraint conversations_created_by_fkey,
  add constraint conversations_created_by_fkey foreign key (created_by) references public.profiles (id) on delete set null;
alter table public.communities alter column created_by drop not null;
alter table public.communities drop constraint communities_created_by_fkey,
  add constraint communities_created_by_fkey foreign key (created_by) references public.profiles (id) on delete set null;
alter table public.broadcasts drop constraint broadcasts_sender_id_fkey,
  add constraint broadcasts_sender_id_fkey foreign key (sender_id) references public.profiles (id) on delete cascade;
alter table public.reported_messages drop constraint reported_messages_reporter_id_fkey,
  add constraint reported_messages_reporter_id_fkey foreign key (reporter_id) references public.profiles (id) on delete cascade;
alter table public.reported_messages drop constraint reported_messages_resolved_by_fkey,
  add constraint reported_messages_resolved_by_fkey foreign key (resolved_by) references public.profiles (id) on delete set null;

-- Erase `target`: the caller must be the user themself or the service role.
create or replace function public.erase_user(target uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  conversations_left uuid[];
  communities_left uuid[];
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
  -- Erasures of several members of one conversation serialize here (in id order: no deadlock), so
  -- the last one sees the others' deletions and removes what nobody is left in.
  perform 1 from public.conversations where id = any (conversations_left) order by id for update;
  perform 1 from public.communities where id = any (communities_left) order by id for update;
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

-- Everything the service holds about the caller, as one JSON document (GDPR export).
create or replace function public.export_my_data() returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'profile', (select to_jsonb(p) - 'email' from public.profiles p where p.id = (select auth.uid())),
    'conversations', coalesce((select jsonb_agg(jsonb_build_object('conversation_id', m.conversation_id,
                        'role', m.role, 'joined_at', m.joined_at))
                        from public.conversation_members m where m.user_id = (select auth.uid())), '[]'),
    'communities', coalesce((select jsonb_agg(jsonb_build_object('community_id', m.community_id,
                        'role', m.role, 'joined_at', m.joined_at))
                        from public.community_members m where m.user_id = (select auth.uid())), '[]'),
    'messages', coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'conversation_id', x.conversation_id,
                        'content', x.content, 'created_at', x.created_at) order by x.created_at)
                        from public.messages x where x.sender_id = (select auth.uid())), '[]'),
    'community_messages', coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'community_id', x.community_id,
                        'content', x.content, 'created_at', x.created_at) order by x.created_at)
                        from public.community_messages x where x.sender_id = (select auth.uid())), '[]'),
    'reactions', coalesce((select jsonb_agg(to_jsonb(r)) from public.message_reactions r
                        where r.user_id = (select auth.uid())), '[]')
  )
$$;

grant execute on function public.erase_user(uuid), public.export_my_data() to authenticated, service_role;

-- Query statistics for database performance monitoring, where the server offers them.
do $$
begin
  create extension if not exists pg_stat_statements;
exception when others then
  raise notice 'pg_stat_statements not available: %', sqlerrm;
end
$$;
