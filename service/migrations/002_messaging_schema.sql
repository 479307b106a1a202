-- messaging_schema: tables, indexes, triggers and functions named as the seed checklists name them.

-- Application roles from the role-based messaging plan, and who may message whom: data, not code.
create table public.app_roles (
  name text primary key
);
insert into public.app_roles (name) values
  ('attendee'), ('dealer'), ('mvp_dealer'), ('organizer'), ('moderator'), ('admin');

create table public.dm_permissions (
  sender_role    text not null references public.app_roles (name),
  recipient_role text not null references public.app_roles (name),
  primary key (sender_role, recipient_role)
);
create index idx_dm_permissions_recipient_role on public.dm_permissions (recipient_role);

-- Attendees may not cold-message (non-MVP) dealers, and dealers may not cold-message attendees.
insert into public.dm_permissions (sender_role, recipient_role)
select s.name, r.name
from public.app_roles s cross join public.app_roles r
where not (s.name = 'attendee' and r.name = 'dealer')
  and not (s.name = 'dealer' and r.name = 'attendee');

create table public.profiles (
  id           uuid primary key,
  display_name text not null default '' check (char_length(display_name) <= 100),
  email        text,
  role         text not null default 'attendee' references public.app_roles (name),
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now()
);
create index idx_profiles_role on public.profiles (role);

create table public.conversations (
  id              uuid primary key default gen_random_uuid(),
  kind            text not null check (kind in ('direct', 'group')),
  title           text check (char_length(title) <= 100),
  created_by      uuid not null references public.profiles (id),
  direct_key      text unique,              -- "<lower uuid>:<higher uuid>" for direct conversations
  last_seq        bigint not null default 0,
  last_message_at timestamptz,
  archived_at     timestamptz,              -- set by the inactivity job
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  check ((kind = 'direct') = (direct_key is not null))
);
create index idx_conversations_created_by on public.conversations (created_by);
create index idx_conversations_last_message_at on public.conversations (last_message_at);

create table public.conversation_members (
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  user_id         uuid not null references public.profiles (id) on delete cascade,
  role            text not null default 'member' check (role in ('owner', 'member')),
  last_read_seq   bigint not null default 0,
  archived_at     timestamptz,               -- archived by this member for themselves
  joined_at       timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  primary key (conversation_id, user_id)
);
create index idx_conversation_members_user on public.conversation_members (user_id, conversation_id);

create table public.messages (
  id              uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  sender_id       uuid not null references public.profiles (id),
  seq             bigint not null,
  client_msg_id   text check (char_length(client_msg_id) <= 100),
  parent_id       uuid references public.messages (id) on delete set null,
  content         text check (char_length(content) <= 5000),
  is_deleted      boolean not null default false,
  deleted_by      uuid references public.profiles (id),
  edited_at       timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  search          tsvector generated always as (to_tsvector('english', coalesce(content, ''))) stored,
  unique (conversation_id, seq),
  unique (sender_id, client_msg_id),
  -- a deleted message keeps no content: the placeholder is the row itself
  check (not is_deleted or content is null)
);
create index idx_messages_conversation_created on public.messages (conversation_id, created_at desc);
create index idx_messages_parent on public.messages (parent_id) where parent_id is not null;
create index idx_messages_deleted_by on public.messages (deleted_by) where deleted_by is not null;
create index idx_messages_search on public.messages using gin (search);

create table public.message_reactions (
  message_id uuid not null references public.messages (id) on delete cascade,
  user_id    uuid not null references public.profiles (id) on delete cascade,
  emoji      text not null check (char_length(emoji) between 1 and 32),
  created_at timestamptz not null default now(),
  primary key (message_id, user_id, emoji)
);
create index idx_message_reactions_user on public.message_reactions (user_id);

create table public.communities (
  id           uuid primary key default gen_random_uuid(),
  name         text not null check (char_length(name) between 1 and 100),
  description  text not null default '' check (char_length(description) <= 1000),
  is_private   boolean not null default false,
  created_by   uuid not null references public.profiles (id),
  member_count integer not null default 0,
  last_seq     bigint not null default 0,
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now(),
  search       tsvector generated always as (to_tsvector('english', name || ' ' || description)) stored
);
create index idx_communities_created_by on public.communities (created_by);
create index idx_communities_search on public.communities using gin (search);

create table public.community_members (
  community_id uuid not null references public.communities (id) on delete cascade,
  user_id      uuid not null references public.profiles (id) on delete cascade,
  role         text not null default 'member' check (role in ('owner', 'admin', 'moderator', 'member')),
  last_read_seq bigint not null default 0,
  joined_at    timestamptz not null default now(),
  updated_at   timestamptz not null default now(),
  primary key (community_id, user_id)
);
create index idx_community_members_user on public.community_members (user_id, community_id);

create table public.community_messages (
  id            uuid primary key default gen_random_uuid(),
  community_id  uuid not null references public.communities (id) on delete cascade,
  sender_id     uuid not null references public.profiles (id),
  seq           bigint not null,
  client_msg_id text check (char_length(client_msg_id) <= 100),
  content       text check (char_length(content) <= 5000),
  is_deleted    boolean not null default false,
  deleted_by    uuid references public.profiles (id),
  edited_at     timestamptz,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  unique (community_id, seq),
  unique (sender_id, client_msg_id),
  check (not is_deleted or content is null)
);
create index idx_community_messages_community_created on public.community_messages (community_id, created_at desc);
create index idx_community_messages_deleted_by on public.community_messages (deleted_by) where deleted_by is not null;

-- Broadcasts: organizers and MVP dealers to an audience, within a quota per phase.
create table public.broadcast_permissions (
  sender_role   text not null references public.app_roles (name),
  audience      text not null check (audience in ('attendees', 'dealers', 'everyone')),
  phase         text not null check (phase in ('pre_show', 'during_show', 'post_show')),
  quota         integer not null check (quota >= 0),
  primary key (sender_role, audience, phase)
);
insert into public.broadcast_permissions (sender_role, audience, phase, quota) values
  ('organizer',  'attendees', 'pre_show', 2), ('organizer', 'dealers', 'pre_show', 2),
  ('organizer',  'everyone',  'pre_show', 2), ('organizer', 'attendees', 'during_show', 10),
  ('organizer',  'dealers',   'during_show', 10), ('organizer', 'everyone', 'during_show', 10),
  ('organizer',  'everyone',  'post_show', 2),
  ('mvp_dealer', 'attendees', 'pre_show', 1), ('mvp_dealer', 'attendees', 'during_show', 2),
  ('admin',      'everyone',  'pre_show', 5), ('admin', 'everyone', 'during_show', 20),
  ('admin',      'everyone',  'post_show', 5);

create table public.broadcast_quotas (
  user_id  uuid not null references public.profiles (id) on delete cascade,
  phase    text not null check (phase in ('pre_show', 'during_show', 'post_show')),
  used     integer not null default 0,
  reset_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (user_id, phase)
);

create table public.broadcasts (
  id         uuid primary key default gen_random_uuid(),
  sender_id  uuid not null references public.profiles (id),
  audience   text not null check (audience in ('attendees', 'dealers', 'everyone')),
  phase      text not null check (phase in ('pre_show', 'during_show', 'post_show')),
  content    text not null check (char_length(content) between 1 and 5000),
  created_at timestamptz not null default now()
);
create index idx_broadcasts_sender on public.broadcasts (sender_id);
create index idx_broadcasts_audience_created on public.broadcasts (audience, created_at desc);

create table public.reported_messages (
  id                   uuid primary key default gen_random_uuid(),
  message_id           uuid references public.messages (id) on delete cascade,
  community_message_id uuid references public.community_messages (id) on delete cascade,
  reporter_id          uuid not null references public.profiles (id),
  reason               text not null check (char_length(reason) between 1 and 1000),
  report_status        text not null default 'pending' check (report_status in ('pending', 'resolved', 'dismissed')),
  resolved_by          uuid references public.profiles (id),
  resolved_at          timestamptz,
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now(),
  check ((message_id is null) <> (community_message_id is null))
);
create index idx_reported_messages_message on public.reported_messages (message_id);
create index idx_reported_messages_community_message on public.reported_messages (community_message_id);
create index idx_reported_messages_reporter on public.reported_messages (reporter_id);
create index idx_reported_messages_resolved_by on public.reported_messages (resolved_by);
create index idx_reported_messages_pending on public.reported_messages (created_at) where report_status = 'pending';

-- Moderation and administrative actions, written by triggers and jobs.
create table public.audit_log (
  id         bigint generated always as identity primary key,
  actor_id   uuid,
  action     text not null,
  subject    text not null,
  detail     jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index idx_audit_log_created on public.audit_log (created_at desc);

-- Fixed-window counters for per-user rate limits; unlogged because losing them on a crash is fine.
create unlogged table public.rate_limit_counters (
  user_id      uuid not null,
  action       text not null,
  window_start timestamptz not null,
  hits         integer not null,
  primary key (user_id, action)
);
