-- Mentions and notifications, recorded by a trigger on every new message (the send path is untouched).
--
-- `@name` in a message mentions the member of that conversation whose display name, without spaces,
-- is `name` (case-insensitive); people outside the conversation are never mentioned. A notification
-- goes to each other member for whom the message is a mention, a reply to their message, a direct
-- message, or a message in a room they chose to hear everything from, unless their preferences say
-- otherwise (level all / mentions / none per room, defaults for direct messages and rooms, mentions
-- on or off, muted until a time).

create table public.notification_preferences (
  user_id         uuid primary key references public.profiles (id) on delete cascade,
  direct_messages text not null default 'all' check (direct_messages in ('all', 'mentions', 'none')),
  rooms           text not null default 'mentions' check (rooms in ('all', 'mentions', 'none')),
  mentions        text not null default 'all' check (mentions in ('all', 'none')),
  muted_until     timestamptz,
  updated_at      timestamptz not null default now()
);

create table public.conversation_notification_settings (
  user_id         uuid not null references public.profiles (id) on delete cascade,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  level           text not null default 'all' check (level in ('all', 'mentions', 'none')),
  muted_until     timestamptz,
  updated_at      timestamptz not null default now(),
  primary key (user_id, conversation_id)
);
create index idx_conversation_notification_settings_conversation
  on public.conversation_notification_settings (conversation_id, user_id);

create table public.message_mentions (
  message_id uuid not null references public.messages (id) on delete cascade,
  user_id    uuid not null references public.profiles (id) on delete cascade,
  primary key (message_id, user_id)
);
create index idx_message_mentions_user on public.message_mentions (user_id);

create table public.notifications (
  id              bigint generated always as identity primary key,
  user_id         uuid not null references public.profiles (id) on delete cascade,
  kind            text not null check (kind in ('mention', 'reply', 'direct', 'message')),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  message_id      uuid not null references public.messages (id) on delete cascade,
  seq             bigint not null,
  actor_id        uuid references public.profiles (id) on delete set null,
  created_at      timestamptz not null default now(),
  read_at         timestamptz,
  pushed_at       timestamptz  -- claimed by the web push sender (one instance pushes each)
);
create index idx_notifications_user on public.notifications (user_id, id desc);
create index idx_notifications_unread on public.notifications (user_id) where read_at is null;
create index idx_notifications_conversation_seq on public.notifications (conversation_id, seq);
create index idx_notifications_message on public.notifications (message_id);
create index idx_notifications_actor on public.notifications (actor_id);

create or replace function public.record_mentions_and_notifications() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  conv_kind text;
  parent_sender uuid;
begin
  if new.sender_id is null or new.content is null or new.is_deleted then
    return null;
  end if;
  if position('@' in new.content) > 0 then
    insert into public.message_mentions (message_id, user_id)
    select distinct new.id, m.user_id
      from public.conversation_members m
      join public.profiles p on p.id = m.user_id
     where m.conversation_id = new.conversation_id
       and m.user_id <> new.sender_id
       and lower(regexp_replace(p.display_name, '\s', '', 'g')) in (
           select lower(x[1]) from regexp_matches(new.content, '@([[:alnum:]_.-]{1,100})', 'g') as x)
    on conflict do nothing;
  end if;
  select c.kind into conv_kind from public.conversations c where c.id = new.conversation_id;
  if new.parent_id is not null then
    select pm.sender_id into parent_sender from public.messages pm where pm.id = new.parent_id;
  end if;
  insert into public.notifications (user_id, kind, conversation_id, message_id, seq, actor_id)
  select r.user_id, r.kind, new.conversation_id, new.id, new.seq, new.sender_id
    from (select m.user_id,
                 case when mm.user_id is not null then 'mention'
                      when m.user_id = parent_sender then 'reply'
                      when conv_kind = 'direct' then 'direct'
                      else 'message' end as kind,
                 coalesce(s.level, case when conv_kind = 'direct' then coalesce(pr.direct_messages, 'all')
                                        else coalesce(pr.rooms, 'mentions') end) as level,
                 coalesce(pr.mentions, 'all') as mentions,
                 coalesce(greatest(s.muted_until, pr.muted_until) > now(), false) as muted
            from public.conversation_members m
            left join public.message_mentions mm on mm.message_id = new.id and mm.user_id = m.user_id
            left join public.conversation_notification_settings s
                   on s.user_id = m.user_id and s.conversation_id = new.conversation_id
            left join public.notification_preferences pr on pr.user_id = m.user_id
           where m.conversation_id = new.conversation_id and m.user_id <> new.sender_id) r
   where not r.muted
     and r.level <> 'none'
     and (r.level = 'all' or r.kind in ('mention', 'reply'))
     and not (r.kind = 'mention' and r.mentions = 'none' and r.level <> 'all');
  return null;
end
$$;
create trigger messages_record_notifications after insert on public.messages
  for each row execute function public.record_mentions_and_notifications();

create trigger update_notification_preferences_updated_at before update on public.notification_preferences
  for each row execute function public.update_updated_at_column();
create trigger update_conversation_notification_settings_updated_at
  before update on public.conversation_notification_settings
  for each row execute function public.update_updated_at_column();

alter table public.notification_preferences enable row level security;
alter table public.notification_preferences force row level security;
alter table public.conversation_notification_settings enable row level security;
alter table public.conversation_notification_settings force row level security;
alter table public.message_mentions enable row level security;
alter table public.message_mentions force row level security;
alter table public.notifications enable row level security;
alter table public.notifications force row level security;

grant select, insert, update, delete on public.notification_preferences to authenticated;
grant select, insert, update, delete on public.conversation_notification_settings to authenticated;
grant select on public.message_mentions to authenticated;
grant select, delete on public.notifications to authenticated;
grant update (read_at) on public.notifications to authenticated;
grant all on public.notification_preferences, public.conversation_notification_settings, public.message_mentions,
  public.notifications to service_role;

create policy notification_preferences_own on public.notification_preferences for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy conversation_notification_settings_own on public.conversation_notification_settings
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()) and public.is_conversation_member(conversation_id));
create policy message_mentions_select on public.message_mentions for select to authenticated
  using (exists (select 1 from public.messages m where m.id = message_id));
create policy notifications_select on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy notifications_update on public.notifications for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy notifications_delete on public.notifications for delete to authenticated
  using (user_id = (select auth.uid()));

-- Web push: one subscription per device (browser push endpoint and its keys).
create table public.push_subscriptions (
  id              uuid primary key default gen_random_uuid(),
  user_id         uuid not null references public.profiles (id) on delete cascade,
  endpoint        text not null unique check (char_length(endpoint) between 1 and 2000),
  p256dh          text not null check (char_length(p256dh) between 1 and 200),
  auth            text not null check (char_length(auth) between 1 and 100),
  user_agent      text check (char_length(user_agent) <= 500),
  created_at      timestamptz not null default now(),
  last_success_at timestamptz
);
create index idx_push_subscriptions_user on public.push_subscriptions (user_id);

alter table public.push_subscriptions enable row level security;
alter table public.push_subscriptions force row level security;
grant select, delete on public.push_subscriptions to authenticated;
grant insert (user_id, endpoint, p256dh, auth, user_agent) on public.push_subscriptions to authenticated;
grant update (p256dh, auth, user_agent) on public.push_subscriptions to authenticated;
grant all on public.push_subscriptions to service_role;
create policy push_subscriptions_own on public.push_subscriptions for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
