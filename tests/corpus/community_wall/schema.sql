-- One community-wide chat: messages with no room at all, readable by everyone (anon included).
create table public.community_messages (
  id uuid not null default gen_random_uuid() primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  message text not null,
  created_at timestamptz not null default now()
);
alter table public.community_messages enable row level security;
create policy read_all on public.community_messages for select using (true);
create policy insert_own on public.community_messages for insert with check (auth.uid() = user_id);
create policy update_own on public.community_messages for update using (auth.uid() = user_id);
create policy delete_own on public.community_messages for delete using (auth.uid() = user_id);
alter table public.community_messages replica identity full;
alter publication supabase_realtime add table public.community_messages;
