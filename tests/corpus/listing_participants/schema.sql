-- Marketplace conversations with the two participants as columns of the conversation, messages that
-- check the participants, profiles keyed by the auth user, and a "service role" policy.
create table public.conversations (
  conversation_id uuid primary key default gen_random_uuid(),
  participant_1 uuid not null references auth.users (id) on delete cascade,
  participant_2 uuid not null references auth.users (id) on delete cascade,
  listing_id uuid not null,
  created_at timestamptz not null default now(),
  constraint different_participants check (participant_1 <> participant_2)
);
alter table public.conversations enable row level security;
create policy read_own on public.conversations for select
  using (auth.uid() = participant_1 or auth.uid() = participant_2);
create policy create_own on public.conversations for insert
  with check (auth.uid() = participant_1 or auth.uid() = participant_2);
create policy service_all on public.conversations for all using (auth.jwt() ->> 'role' = 'service_role');

create table public.messages (
  message_id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (conversation_id) on delete cascade,
  sent_by uuid not null references auth.users (id) on delete cascade,
  time_sent timestamptz not null default now(),
  message_body text not null
);
alter table public.messages enable row level security;
create policy read_in_own on public.messages for select using (
  exists (select 1 from public.conversations c
           where c.conversation_id = messages.conversation_id
             and (c.participant_1 = auth.uid() or c.participant_2 = auth.uid())));
create policy send_in_own on public.messages for insert with check (
  auth.uid() = sent_by
  and exists (select 1 from public.conversations c
               where c.conversation_id = messages.conversation_id
                 and (c.participant_1 = auth.uid() or c.participant_2 = auth.uid())));
create policy service_all on public.messages for all using (auth.jwt() ->> 'role' = 'service_role');

create table public.user_profiles (
  auth_user_id uuid primary key references auth.users (id) on delete cascade,
  status text not null default 'active',
  join_date timestamptz not null default now(),
  first_names text,
  last_names text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.user_profiles enable row level security;
create policy read_own_profile on public.user_profiles for select using (auth.uid() = auth_user_id);
create policy update_own_profile on public.user_profiles for update using (auth.uid() = auth_user_id);
create policy service_all on public.user_profiles for all using (auth.jwt() ->> 'role' = 'service_role');

create function public.handle_new_user() returns trigger language plpgsql security definer as $$
begin
  insert into public.user_profiles (auth_user_id, first_names, last_names)
  values (new.id, new.raw_user_meta_data ->> 'first_names', new.raw_user_meta_data ->> 'last_names');
  return new;
end
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute function public.handle_new_user();
