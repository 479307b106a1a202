-- Row Level Security: authorization lives here. Policies call (select auth.uid()) once per
-- statement, and membership through SECURITY DEFINER helpers; every column they read is indexed.

do $$
declare t text;
begin
  foreach t in array array['app_roles', 'dm_permissions', 'profiles', 'conversations', 'conversation_members',
                           'messages', 'message_reactions', 'communities', 'community_members',
                           'community_messages', 'broadcast_permissions', 'broadcast_quotas', 'broadcasts',
                           'reported_messages', 'audit_log', 'rate_limit_counters']
  loop
    execute format('alter table public.%I enable row level security', t);
    execute format('alter table public.%I force row level security', t);
  end loop;
end
$$;

-- Table privileges: anon gets nothing; authenticated gets what its policies then narrow.
grant select on public.app_roles, public.dm_permissions, public.broadcast_permissions to authenticated;
grant select (id, display_name, role, created_at, updated_at) on public.profiles to authenticated;
grant insert (id, display_name, email) on public.profiles to authenticated;
grant update (display_name, email) on public.profiles to authenticated;
grant select, insert on public.conversations to authenticated;
grant update (title) on public.conversations to authenticated;
grant delete on public.conversations to authenticated;
grant select, insert, delete on public.conversation_members to authenticated;
grant update (last_read_seq, archived_at) on public.conversation_members to authenticated;
grant select, delete on public.messages to authenticated;
grant insert (conversation_id, sender_id, client_msg_id, parent_id, content) on public.messages to authenticated;
grant update (content, is_deleted, deleted_by, edited_at) on public.messages to authenticated;
grant select, insert, delete on public.message_reactions to authenticated;
grant select, delete on public.communities to authenticated;
-- The API chooses a community's id: INSERT ... RETURNING of a private community would fail the
-- SELECT policy, since the owner's membership is added by an AFTER trigger.
grant insert (id, name, description, is_private, created_by) on public.communities to authenticated;
grant update (name, description, is_private) on public.communities to authenticated;
grant select, delete on public.community_members to authenticated;
grant insert (community_id, user_id, role) on public.community_members to authenticated;
grant update (role, last_read_seq) on public.community_members to authenticated;
grant select, delete on public.community_messages to authenticated;
grant insert (community_id, sender_id, client_msg_id, content) on public.community_messages to authenticated;
grant update (content, is_deleted, deleted_by, edited_at) on public.community_messages to authenticated;
grant select on public.broadcast_quotas, public.broadcasts to authenticated;
grant select, insert on public.reported_messages to authenticated;
grant update (report_status, resolved_by, resolved_at) on public.reported_messages to authenticated;
grant select on public.audit_log to authenticated;
grant select on public.rate_limit_counters to authenticated;
grant all on all tables in schema public to service_role;

-- Reference data: readable by signed-in users, written by migrations only.
create policy app_roles_select on public.app_roles for select to authenticated using (true);
create policy dm_permissions_select on public.dm_permissions for select to authenticated using (true);
create policy broadcast_permissions_select on public.broadcast_permissions for select to authenticated using (true);

-- Profiles: everyone signed in sees names and roles (emails are not granted); you edit only yourself.
create policy profiles_select on public.profiles for select to authenticated using (true);
create policy profiles_insert on public.profiles for insert to authenticated
  with check (id = (select auth.uid()));
create policy profiles_update on public.profiles for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));
-- No delete policy: accounts are erased through public.erase_user(), which cleans up after them.

-- Conversations: visible to members only.
create policy conversations_select on public.conversations for select to authenticated
  using (public.is_conversation_member(id));
create policy conversations_insert on public.conversations for insert to authenticated
  with check (created_by = (select auth.uid()) and kind = 'group');
create policy conversations_update on public.conversations for update to authenticated
  using (created_by = (select auth.uid())) with check (created_by = (select auth.uid()));
create policy conversations_delete on public.conversations for delete to authenticated
  using (created_by = (select auth.uid()) and kind = 'group');

create policy conversation_members_select on public.conversation_members for select to authenticated
  using (public.is_conversation_member(conversation_id));
create policy conversation_members_insert on public.conversation_members for insert to authenticated
  with check (exists (select 1 from public.conversations c
                      where c.id = conversation_id and c.kind = 'group' and c.created_by = (select auth.uid())));
create policy conversation_members_update on public.conversation_members for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy conversation_members_delete on public.conversation_members for delete to authenticated
  using (user_id = (select auth.uid())
         or exists (select 1 from public.conversations c
                    where c.id = conversation_id and c.kind = 'group' and c.created_by = (select auth.uid())));

-- Messages: members read and send; the sender edits; the sender or a moderator/admin deletes.
create policy messages_select on public.messages for select to authenticated
  using (public.is_conversation_member(conversation_id));
create policy messages_insert on public.messages for insert to authenticated
  with check (sender_id = (select auth.uid()) and public.is_conversation_member(conversation_id));
create policy messages_update on public.messages for update to authenticated
  using (sender_id = (select auth.uid()) or (select public.app_role()) in ('moderator', 'admin'))
  with check (sender_id = (select auth.uid()) or (select public.app_role()) in ('moderator', 'admin'));
create policy messages_delete on public.messages for delete to authenticated
  using (sender_id = (select auth.uid()) or (select public.app_role()) in ('moderator', 'admin'));

create policy message_reactions_select on public.message_reactions for select to authenticated
  using (exists (select 1 from public.messages m where m.id = message_id));
create policy message_reactions_insert on public.message_reactions for insert to authenticated
  with check (user_id = (select auth.uid()) and exists (select 1 from public.messages m where m.id = message_id));
create policy message_reactions_delete on public.message_reactions for delete to authenticated
  using (user_id = (select auth.uid()));

-- Communities: public ones are visible to everyone signed in, private ones to members only.
create policy communities_select on public.communities for select to authenticated
  using (not is_private or public.community_role(id) is not null);
create policy communities_insert on public.communities for insert to authenticated
  with check (created_by = (select auth.uid()));
create policy communities_update on public.communities for update to authenticated
  using (public.community_role(id) in ('owner', 'admin'))
  with check (public.community_role(id) in ('owner', 'admin'));
create policy communities_delete on public.communities for delete to authenticated
  using (public.community_role(id) = 'owner');

create policy community_members_select on public.community_members for select to authenticated
  using (exists (select 1 from public.communities c where c.id = community_id));
-- Join a public community as a plain member yourself; owners/admins add anyone to any community.
-- Nobody becomes owner through an insert (the owner row comes from add_community_owner), and
-- admins cannot re-role the owner.
create policy community_members_insert on public.community_members for insert to authenticated
  with check (
    role <> 'owner'
    and ((user_id = (select auth.uid()) and role = 'member'
          and exists (select 1 from public.communities c where c.id = community_id and not c.is_private))
         or public.community_role(community_id) in ('owner', 'admin')));
create policy community_members_update on public.community_members for update to authenticated
  using (public.community_role(community_id) in ('owner', 'admin') and role <> 'owner')
  with check (public.community_role(community_id) in ('owner', 'admin') and role <> 'owner');
create policy community_members_delete on public.community_members for delete to authenticated
  using ((user_id = (select auth.uid()) and role <> 'owner')
         or (public.community_role(community_id) in ('owner', 'admin', 'moderator') and role = 'member'));

create policy community_messages_select on public.community_messages for select to authenticated
  using (public.community_role(community_id) is not null);
create policy community_messages_insert on public.community_messages for insert to authenticated
  with check (sender_id = (select auth.uid()) and public.community_role(community_id) is not null);
create policy community_messages_update on public.community_messages for update to authenticated
  using (sender_id = (select auth.uid())
         or public.community_role(community_id) in ('owner', 'admin', 'moderator')
         or (select public.app_role()) in ('moderator', 'admin'))
  with check (sender_id = (select auth.uid())
         or public.community_role(community_id) in ('owner', 'admin', 'moderator')
         or (select public.app_role()) in ('moderator', 'admin'));
create policy community_messages_delete on public.community_messages for delete to authenticated
  using (sender_id = (select auth.uid())
         or public.community_role(community_id) in ('owner', 'admin', 'moderator')
         or (select public.app_role()) in ('moderator', 'admin'));

-- Broadcasts: written only through send_broadcast(); read by their sender and their audience.
create policy broadcasts_select on public.broadcasts for select to authenticated
  using (sender_id = (select auth.uid())
         or audience = 'everyone'
         or (audience = 'attendees' and (select public.app_role()) = 'attendee')
         or (audience = 'dealers' and (select public.app_role()) in ('dealer', 'mvp_dealer')));
create policy broadcast_quotas_select on public.broadcast_quotas for select to authenticated
  using (user_id = (select auth.uid()));

-- Reports: anyone reports what they can see; moderators and admins work the queue.
create policy reported_messages_select on public.reported_messages for select to authenticated
  using (reporter_id = (select auth.uid()) or (select public.app_role()) in ('moderator', 'admin'));
create policy reported_messages_insert on public.reported_messages for insert to authenticated
  with check (reporter_id = (select auth.uid())
              and ((message_id is not null and exists (select 1 from public.messages m where m.id = message_id))
                   or (community_message_id is not null
                       and exists (select 1 from public.community_messages m where m.id = community_message_id))));
create policy reported_messages_update on public.reported_messages for update to authenticated
  using ((select public.app_role()) in ('moderator', 'admin'))
  with check ((select public.app_role()) in ('moderator', 'admin'));

create policy audit_log_select on public.audit_log for select to authenticated
  using ((select public.app_role()) = 'admin');

-- Rate-limit counters are touched only through rate_limit_hit().
create policy rate_limit_counters_select on public.rate_limit_counters for select to authenticated
  using (user_id = (select auth.uid()));

-- Realtime replication (Supabase convention): the tables clients subscribe to.
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime add table public.messages, public.community_messages,
  public.conversations, public.communities;

-- Hot tables get more eager autovacuum than the defaults.
alter table public.messages set (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);
alter table public.community_messages set (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);
alter table public.conversations set (autovacuum_vacuum_scale_factor = 0.05);
alter table public.conversation_members set (autovacuum_vacuum_scale_factor = 0.05);
