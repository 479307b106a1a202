-- Buyer/seller conversations (participants as columns of the conversation); messages carry sender and
-- receiver but their conversation_id has no foreign key, and the policies never look at the conversation.
create table public.messages (
  id uuid not null default gen_random_uuid() primary key,
  conversation_id uuid not null,
  sender_id uuid not null,
  receiver_id uuid not null,
  content text not null,
  is_read boolean not null default false,
  created_at timestamptz not null default now()
);
create table public.conversations (
  id uuid not null default gen_random_uuid() primary key,
  buyer_id uuid not null,
  seller_id uuid not null,
  last_message_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  unique (buyer_id, seller_id)
);
alter table public.messages enable row level security;
alter table public.conversations enable row level security;

create policy view_own on public.messages for select using (auth.uid() = sender_id or auth.uid() = receiver_id);
create policy send on public.messages for insert with check (auth.uid() = sender_id);
create policy mark_read on public.messages for update using (auth.uid() = receiver_id);
create policy view_own on public.conversations for select using (auth.uid() = buyer_id or auth.uid() = seller_id);
create policy create_own on public.conversations for insert
  with check (auth.uid() = buyer_id or auth.uid() = seller_id);

alter publication supabase_realtime add table public.messages, public.conversations;
