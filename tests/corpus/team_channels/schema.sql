-- Team messaging inside agencies: channels, channel members and messages reference an app users table
-- whose auth_id column holds the auth user; policies map auth.uid() through users.auth_id.
create table public.agencies (
  id uuid primary key default gen_random_uuid(),
  name text not null
);
create table public.users (
  id uuid primary key default gen_random_uuid(),
  auth_id uuid unique references auth.users (id),
  name text not null,
  email text
);
alter table public.agencies enable row level security;
alter table public.users enable row level security;
create policy users_self on public.users for select using (auth_id = auth.uid());

create table public.team_channels (
  id uuid primary key default gen_random_uuid(),
  agency_id uuid not null references public.agencies (id) on delete cascade,
  type text not null check (type in ('channel', 'dm')),
  name text,
  description text,
  created_by uuid references public.users (id) on delete set null,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create unique index idx_unique_channel_name on public.team_channels (agency_id, lower(name))
  where type = 'channel' and name is not null;
create index idx_team_channels_agency on public.team_channels (agency_id);
create index idx_team_channels_type on public.team_channels (agency_id, type);
alter table public.team_channels enable row level security;

create table public.team_channel_members (
  id uuid primary key default gen_random_uuid(),
  channel_id uuid not null references public.team_channels (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  last_read_at timestamptz default now(),
  joined_at timestamptz default now(),
  unique (channel_id, user_id)
);
create index idx_team_channel_members_user on public.team_channel_members (user_id);
create index idx_team_channel_members_channel on public.team_channel_members (channel_id);
alter table public.team_channel_members enable row level security;

create table public.team_messages (
  id uuid primary key default gen_random_uuid(),
  channel_id uuid not null references public.team_channels (id) on delete cascade,
  sender_id uuid not null references public.users (id) on delete cascade,
  content text not null,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create index idx_team_messages_channel on public.team_messages (channel_id, created_at desc);
create index idx_team_messages_sender on public.team_messages (sender_id);
alter table public.team_messages enable row level security;
alter publication supabase_realtime add table public.team_messages;

create policy team_messages_select on public.team_messages for select using (
  exists (select 1 from public.team_channel_members tcm join public.users u on u.id = tcm.user_id
           where tcm.channel_id = team_messages.channel_id and u.auth_id = auth.uid()));
create policy team_messages_insert on public.team_messages for insert with check (
  exists (select 1 from public.team_channel_members tcm join public.users u on u.id = tcm.user_id
           where tcm.channel_id = team_messages.channel_id and u.auth_id = auth.uid()));
create policy team_channels_select on public.team_channels for select using (
  exists (select 1 from public.team_channel_members tcm join public.users u on u.id = tcm.user_id
           where tcm.channel_id = team_channels.id and u.auth_id = auth.uid()));
create policy team_channel_members_select on public.team_channel_members for select using (
  exists (select 1 from public.users u where u.id = team_channel_members.user_id and u.auth_id = auth.uid()));
