-- Notifications for communities, through the same trigger, feed, realtime events and web push as for
-- conversations.
--
-- A notification points at exactly one room: a conversation and one of its messages, or a community
-- and one of its messages. `@name` in a community message mentions the member of that community whose
-- display name, without spaces, is `name`; people outside the community are never mentioned. Each other
-- member is notified of a mention, or of every message when they chose to hear everything from the
-- community, unless their preferences say otherwise: a level per community (all / mentions / none) and
-- a mute, over the defaults (`notification_preferences.rooms`, mentions on or off, mute everything).
-- Community messages have no threads, so replies notify in conversations only.

create table public.community_notification_settings (
  user_id      uuid not null references public.profiles (id) on delete cascade,
  community_id uuid not null references public.communities (id) on delete cascade,
  level        text not null default 'all' check (level in ('all', 'mentions', 'none')),
  muted_until  timestamptz,
  updated_at   timestamptz not null default now(),
  primary key (user_id, community_id)
);
create index idx_community_notification_settings_community
  on public.community_notification_settings (community_id, user_id);

create table public.community_message_mentions (
  community_message_id uuid not null references public.community_messages (id) on delete cascade,
  user_id              uuid not null references public.profiles (id) on delete cascade,
  primary key (community_message_id, user_id)
);
create index idx_community_message_mentions_user on public.community_message_mentions (user_id);

alter table public.notifications
  alter column conversation_id drop not null,
  alter column message_id drop not null,
  add column community_id uuid references public.communities (id) on delete cascade,
  add column community_message_id uuid references public.community_messages (id) on delete cascade,
  add constraint notifications_one_room check ((conversation_id is null) <> (community_id is null)),
  add constraint notifications_message_of_room
    check ((message_id is null) = (conversation_id is null) and (community_message_id is null) = (community_id is null));
create index idx_notifications_community_seq on public.notifications (community_id, seq);
create index idx_notifications_community_message on public.notifications (community_message_id);

-- One trigger function for messages and community messages, one statement: the room's other members
-- with their setting for the room, those the message mentions (recorded), and their notifications.
-- The branch for the other kind of room is cut by a one-time filter; the plan is cached per table.
create or replace function public.record_mentions_and_notifications() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  community boolean := tg_table_name = 'community_messages';
  room uuid;
  room_kind text := 'community';
  parent_sender uuid;
  handles text[] := '{}';
begin
  if new.sender_id is null or new.content is null or new.is_deleted then
    return null;
  end if;
  if community then
    room := new.community_id;
  else
    room := new.conversation_id;
    select c.kind into room_kind from public.conversations c where c.id = room;
    if new.parent_id is not null then
      select pm.sender_id into parent_sender from public.messages pm where pm.id = new.parent_id;
    end if;
  end if;
  if position('@' in new.content) > 0 then
    handles := array(select lower(x[1]) from regexp_matches(new.content, '@([[:alnum:]_.-]{1,100})', 'g') as x);
  end if;
  with recipients as (
    select m.user_id, s.level, s.muted_until
      from public.conversation_members m
      left join public.conversation_notification_settings s
             on s.user_id = m.user_id and s.conversation_id = m.conversation_id
     where not community and m.conversation_id = room and m.user_id <> new.sender_id
    union all
    select m.user_id, s.level, s.muted_until
      from public.community_members m
      left join public.community_notification_settings s
             on s.user_id = m.user_id and s.community_id = m.community_id
     where community and m.community_id = room and m.user_id <> new.sender_id
  ), mentioned as (
    select distinct r.user_id
      from recipients r
      join public.profiles p on p.id = r.user_id
     where cardinality(handles) > 0 and lower(regexp_replace(p.display_name, '\s', '', 'g')) = any(handles)
  ), conversation_mentions as (
    insert into public.message_mentions (message_id, user_id)
    select new.id, mm.user_id from mentioned mm where not community
    on conflict do nothing
  ), community_mentions as (
    insert into public.community_message_mentions (community_message_id, user_id)
    select new.id, mm.user_id from mentioned mm where community
    on conflict do nothing
  )
  insert into public.notifications (user_id, kind, conversation_id, message_id, community_id, community_message_id,
                                    seq, actor_id)
  select r.user_id, r.kind,
         case when not community then room end, case when not community then new.id end,
         case when community then room end, case when community then new.id end,
         new.seq, new.sender_id
    from (select m.user_id,
                 case when mm.user_id is not null then 'mention'
                      when m.user_id = parent_sender then 'reply'
                      when room_kind = 'direct' then 'direct'
                      else 'message' end as kind,
                 coalesce(m.level, case when room_kind = 'direct' then coalesce(pr.direct_messages, 'all')
                                        else coalesce(pr.rooms, 'mentions') end) as level,
                 coalesce(pr.mentions, 'all') as mentions,
                 coalesce(greatest(m.muted_until, pr.muted_until) > now(), false) as muted
            from recipients m
            left join mentioned mm on mm.user_id = m.user_id
            left join public.notification_preferences pr on pr.user_id = m.user_id) r
   where not r.muted
     and r.level <> 'none'
     and (r.level = 'all' or r.kind in ('mention', 'reply'))
     and not (r.kind = 'mention' and r.mentions = 'none' and r.level <> 'all');
  return null;
end
$$;
create trigger community_messages_record_notifications after insert on public.community_messages
  for each row execute function public.record_mentions_and_notifications();

create trigger update_community_notification_settings_updated_at
  before update on public.community_notification_settings
  for each row execute function public.update_updated_at_column();

alter table public.community_notification_settings enable row level security;
alter table public.community_notification_settings force row level security;
alter table public.community_message_mentions enable row level security;
alter table public.community_message_mentions force row level security;

grant select, insert, update, delete on public.community_notification_settings to authenticated;
grant select on public.community_message_mentions to authenticated;
grant all on public.community_notification_settings, public.community_message_mentions to service_role;

create policy community_notification_settings_own on public.community_notification_settings
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()) and public.community_role(community_id) is not null);
create policy community_message_mentions_select on public.community_message_mentions for select to authenticated
  using (exists (select 1 from public.community_messages m where m.id = community_message_id));
