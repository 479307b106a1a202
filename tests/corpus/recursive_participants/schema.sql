-- Profiles readable by everyone, conversations with a participants table whose SELECT policy reads the
-- participants table itself (infinite recursion), and INSERT policies that check nothing.
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text unique not null,
  display_name text,
  bio text,
  avatar_url text,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
alter table public.profiles enable row level security;
create policy profiles_read on public.profiles for select using (true);
create policy profiles_update on public.profiles for update using (auth.uid() = id);
create policy profiles_insert on public.profiles for insert with check (auth.uid() = id);

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create table public.conversation_participants (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  user_id uuid not null,
  joined_at timestamptz not null default now(),
  unique (conversation_id, user_id)
);
create table public.messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  sender_id uuid not null,
  content text not null,
  created_at timestamptz not null default now(),
  read boolean not null default false
);
alter table public.conversations enable row level security;
alter table public.conversation_participants enable row level security;
alter table public.messages enable row level security;

create policy conv_select on public.conversations for select using (
  exists (select 1 from public.conversation_participants
           where conversation_id = conversations.id and user_id = auth.uid()));
create policy conv_insert on public.conversations for insert to authenticated with check (true);
create policy part_select on public.conversation_participants for select using (
  exists (select 1 from public.conversation_participants cp
           where cp.conversation_id = conversation_participants.conversation_id and cp.user_id = auth.uid()));
create policy part_insert on public.conversation_participants for insert to authenticated with check (true);
create policy msg_select on public.messages for select using (
  exists (select 1 from public.conversation_participants
           where conversation_id = messages.conversation_id and user_id = auth.uid()));
create policy msg_insert on public.messages for insert to authenticated with check (
  auth.uid() = sender_id
  and exists (select 1 from public.conversation_participants
               where conversation_id = messages.conversation_id and user_id = auth.uid()));
create policy msg_update on public.messages for update using (sender_id = auth.uid());

alter publication supabase_realtime add table public.messages;

create function public.update_conversation_timestamp() returns trigger language plpgsql as $$
begin
  update public.conversations set updated_at = now() where id = new.conversation_id;
  return new;
end
$$;
create trigger update_conversation_timestamp_trigger after insert on public.messages
  for each row execute function public.update_conversation_timestamp();

-- storage, from the same profiles migration: two public buckets readable by bucket alone
insert into storage.buckets (id, name, public) values ('posts', 'posts', true), ('avatars', 'avatars', true)
  on conflict (id) do nothing;
create policy posts_view on storage.objects for select using (bucket_id = 'posts');
create policy posts_upload on storage.objects for insert
  with check (bucket_id = 'posts' and auth.role() = 'authenticated');
create policy posts_update on storage.objects for update
  using (bucket_id = 'posts' and auth.uid()::text = (storage.foldername(name))[1]);
create policy posts_delete on storage.objects for delete
  using (bucket_id = 'posts' and auth.uid()::text = (storage.foldername(name))[1]);
create policy avatars_view on storage.objects for select using (bucket_id = 'avatars');
create policy avatars_upload on storage.objects for insert
  with check (bucket_id = 'avatars' and auth.role() = 'authenticated');
create policy avatars_update on storage.objects for update
  using (bucket_id = 'avatars' and auth.uid()::text = (storage.foldername(name))[1]);
create policy avatars_delete on storage.objects for delete
  using (bucket_id = 'avatars' and auth.uid()::text = (storage.foldername(name))[1]);
