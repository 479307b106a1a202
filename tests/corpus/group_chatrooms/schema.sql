-- Chatrooms as a base table with group and direct subtypes (class-table inheritance kept in step by
-- triggers), group roles (admin/mod/member/viewer) in user_to_group, every access decision through a
-- SECURITY DEFINER get_role_in_chatroom() in a private utils schema, and two Storage buckets: public user
-- avatars at public/<uid>.jpg and private chatroom avatars named <chatroom id>.jpg.
create type public.chatroom_type as enum ('direct', 'group');
create type public.chatroom_role as enum ('admin', 'mod', 'member', 'viewer');

create table public.chatrooms (
  id uuid primary key default gen_random_uuid(),
  type public.chatroom_type not null,
  created_at timestamptz not null default now()
);
create table public.group_chatrooms (
  chatroom_id uuid primary key default gen_random_uuid() references public.chatrooms (id) on delete cascade,
  name text not null check (length(name) <= 30),
  description text check (description is null or length(description) <= 255)
);
create table public.direct_chatrooms (
  chatroom_id uuid primary key default gen_random_uuid() references public.chatrooms (id) on delete cascade,
  user1_id uuid default auth.uid() references auth.users (id) on delete set null,
  user2_id uuid references auth.users (id) on delete set null,
  check (user1_id <> user2_id),
  unique (user1_id, user2_id)
);
create table public.user_to_group (
  user_id uuid default auth.uid() references auth.users (id) on delete cascade,
  chatroom_id uuid references public.group_chatrooms (chatroom_id) on delete cascade,
  role public.chatroom_role not null,
  primary key (user_id, chatroom_id)
);
create table public.user_to_abstract_chatroom (
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  chatroom_id uuid not null references public.chatrooms (id) on delete cascade,
  last_inside timestamptz not null default now(),
  primary key (user_id, chatroom_id)
);
create table public.group_invitations (
  id uuid primary key default gen_random_uuid(),
  invitee_id uuid not null references auth.users (id) on delete cascade,
  chatroom_id uuid not null references public.group_chatrooms (chatroom_id) on delete cascade,
  invitor_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  as_role public.chatroom_role not null,
  created_at timestamptz not null default now(),
  unique (invitee_id, chatroom_id)
);
create table public.profiles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  username text not null unique check (length(username) <= 30),
  displayname text check (length(displayname) <= 50),
  description text check (length(description) <= 255)
);
create table public.messages (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  chatroom_id uuid not null references public.chatrooms (id) on delete cascade,
  content text not null check (length(content) <= 2048),
  created_at timestamptz not null default now(),
  unique (chatroom_id, id)
);

-- the helpers live in a schema the API roles cannot use
create schema utils;
revoke all on schema utils from anon, authenticated;

create function utils.get_role_in_chatroom(uid uuid, cid uuid) returns public.chatroom_role
language plpgsql stable security definer set search_path = '' as $$
declare
  kind public.chatroom_type;
  found public.chatroom_role;
begin
  select c.type into kind from public.chatrooms c where c.id = cid;
  if kind is null then
    return null;
  end if;
  if kind = 'group' then
    select g.role into found from public.user_to_group g where g.user_id = uid and g.chatroom_id = cid;
    return found;
  end if;
  if not exists (select 1 from public.direct_chatrooms d
                  where d.chatroom_id = cid and (d.user1_id = uid or d.user2_id = uid)) then
    return null;
  end if;
  return 'admin';  -- both people in a direct chat are its admins
end
$$;
create function utils.get_role_in_invitation(uid uuid, cid uuid) returns public.chatroom_role
language sql stable security definer set search_path = '' as $$
  select i.as_role from public.group_invitations i where i.invitee_id = uid and i.chatroom_id = cid
$$;
create function utils.is_invited(uid uuid, cid uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (select 1 from public.group_invitations i where i.chatroom_id = cid and i.invitee_id = uid);
end
$$;
create function utils.get_filename_as_uuid(filename_with_extension text) returns uuid
language plpgsql stable security definer set search_path = '' as $$
begin
  return (string_to_array(filename_with_extension, '.'))[1]::uuid;
exception when others then
  return null;
end
$$;

-- subtype rows create their base row; the creator of a group becomes its admin; memberships are mirrored
-- into user_to_abstract_chatroom
create function public.before_insert_group_chatroom() returns trigger
language plpgsql security definer set search_path = '' as $$
declare made uuid;
begin
  if exists (select 1 from public.chatrooms where id = new.chatroom_id) then
    raise exception 'A chatroom with this ID already exists';
  end if;
  made := coalesce(new.chatroom_id, gen_random_uuid());
  insert into public.chatrooms (id, type) values (made, 'group');
  new.chatroom_id := made;
  return new;
end
$$;
revoke all on function public.before_insert_group_chatroom() from authenticated, anon;
create trigger auto_create_group_chatroom_base before insert on public.group_chatrooms
  for each row execute procedure public.before_insert_group_chatroom();

create function public.before_insert_direct_chatroom() returns trigger
language plpgsql security definer set search_path = '' as $$
declare made uuid;
begin
  if exists (select 1 from public.chatrooms where id = new.chatroom_id)
     or exists (select 1 from public.direct_chatrooms where user2_id = new.user1_id and user1_id = new.user2_id) then
    raise sqlstate '23505' using message = 'A chatroom with this user already exists';
  end if;
  made := coalesce(new.chatroom_id, gen_random_uuid());
  insert into public.chatrooms (id, type) values (made, 'direct');
  new.chatroom_id := made;
  return new;
end
$$;
revoke all on function public.before_insert_direct_chatroom() from authenticated, anon;
create trigger auto_create_direct_chatroom_base before insert on public.direct_chatrooms
  for each row execute procedure public.before_insert_direct_chatroom();

create function public.handle_new_group_chatroom() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if auth.uid() is null then
    return new;
  end if;
  insert into public.user_to_group (user_id, chatroom_id, role) values ((select auth.uid()), new.chatroom_id, 'admin');
  return new;
end
$$;
revoke all on function public.handle_new_group_chatroom() from authenticated, anon;
create trigger after_insert_group_chatroom after insert on public.group_chatrooms
  for each row execute procedure public.handle_new_group_chatroom();

create function public.after_insert_user_to_group() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from public.group_invitations i where i.invitee_id = new.user_id and i.chatroom_id = new.chatroom_id;
  insert into public.user_to_abstract_chatroom (user_id, chatroom_id) values (new.user_id, new.chatroom_id);
  return new;
end
$$;
revoke all on function public.after_insert_user_to_group() from authenticated, anon;
create trigger after_insert_user_to_group after insert on public.user_to_group
  for each row execute procedure public.after_insert_user_to_group();

create function public.after_insert_direct_chatrooms() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.user_to_abstract_chatroom (user_id, chatroom_id) values (new.user1_id, new.chatroom_id);
  insert into public.user_to_abstract_chatroom (user_id, chatroom_id) values (new.user2_id, new.chatroom_id);
  return new;
end
$$;
revoke all on function public.after_insert_direct_chatrooms() from authenticated, anon;
create trigger after_insert_direct_chatrooms after insert on public.direct_chatrooms
  for each row execute procedure public.after_insert_direct_chatrooms();

create function public.enforce_user_to_group_update_policies() returns trigger
language plpgsql security definer set search_path = '' as $$
declare mine public.chatroom_role;
begin
  if new.user_id <> old.user_id or new.chatroom_id <> old.chatroom_id then
    raise exception 'Update operation not allowed';
  end if;
  if new.user_id = (select auth.uid()) then
    raise exception 'Cannot change your own role';
  end if;
  if old.role = 'admin' then
    raise exception 'Cannot change the role of an admin';
  end if;
  select g.role into mine from public.user_to_group g
   where g.user_id = (select auth.uid()) and g.chatroom_id = new.chatroom_id;
  if mine not in ('mod', 'admin') then
    raise exception 'Must be admin or mod to edit member roles';
  end if;
  if mine = 'mod' and (old.role not in ('viewer', 'member') or new.role not in ('viewer', 'member')) then
    raise exception 'Mods can only convert viewers to members and vice versa';
  end if;
  return new;
end
$$;
revoke all on function public.enforce_user_to_group_update_policies() from authenticated, anon;
create trigger trigger_enforce_user_to_group_update_policies before update on public.user_to_group
  for each row execute procedure public.enforce_user_to_group_update_policies();

-- records when a user last looked into a chatroom; only this function writes it
create function public.update_last_inside_chatroom(cid uuid) returns void
language sql security definer set search_path = '' as $$
  update public.user_to_abstract_chatroom a set last_inside = now()
   where a.user_id = (select auth.uid()) and a.chatroom_id = cid
$$;
revoke all on function public.update_last_inside_chatroom(uuid) from authenticated, anon;
grant execute on function public.update_last_inside_chatroom(uuid) to authenticated;

alter table public.chatrooms enable row level security;
alter table public.group_chatrooms enable row level security;
alter table public.direct_chatrooms enable row level security;
alter table public.user_to_group enable row level security;
alter table public.user_to_abstract_chatroom enable row level security;
alter table public.group_invitations enable row level security;
alter table public.profiles enable row level security;
alter table public.messages enable row level security;

create policy chatrooms_select on public.chatrooms for select to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), id) is not null);
revoke all on public.chatrooms from authenticated, anon;
grant select on public.chatrooms to authenticated;

create policy group_select on public.group_chatrooms for select to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) is not null
         or utils.is_invited((select auth.uid()), chatroom_id));
create policy group_insert on public.group_chatrooms for insert to authenticated with check (true);
create policy group_update on public.group_chatrooms for update to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) = 'admin');
revoke update on public.group_chatrooms from authenticated;
grant update (name, description) on public.group_chatrooms to authenticated;
create policy group_delete on public.group_chatrooms for delete to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) = 'admin');

create policy direct_select on public.direct_chatrooms for select to authenticated
  using ((select auth.uid()) in (user1_id, user2_id));
create policy direct_insert on public.direct_chatrooms for insert to authenticated with check (user2_id is not null);
revoke insert on public.direct_chatrooms from authenticated;
grant insert (chatroom_id, user2_id) on public.direct_chatrooms to authenticated;
create policy direct_update on public.direct_chatrooms for update to authenticated
  using ((select auth.uid()) in (user1_id, user2_id));
create policy direct_delete on public.direct_chatrooms for delete to authenticated
  using ((select auth.uid()) = user1_id and user2_id is null or (select auth.uid()) = user2_id and user1_id is null);

create policy utg_select on public.user_to_group for select to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) is not null);
create policy utg_insert on public.user_to_group for insert to authenticated
  with check (user_to_group.user_id = (select auth.uid()) and user_to_group.role is not null
              and utils.get_role_in_invitation(user_to_group.user_id, user_to_group.chatroom_id) = user_to_group.role);
create policy utg_update on public.user_to_group for update to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) is not null);
create policy utg_delete on public.user_to_group for delete to authenticated
  using (user_id <> (select auth.uid()) and utils.get_role_in_chatroom((select auth.uid()), chatroom_id) = 'admin'
         and role <> 'admin');

create policy utac_select on public.user_to_abstract_chatroom for select to authenticated
  using (user_id = (select auth.uid()));

create policy inv_select_staff on public.group_invitations for select to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), group_invitations.chatroom_id) in ('mod', 'admin'));
create policy inv_select_invitee on public.group_invitations for select to authenticated
  using (group_invitations.invitee_id = (select auth.uid()));
create policy inv_insert on public.group_invitations for insert to authenticated
  with check (((utils.get_role_in_chatroom((select auth.uid()), group_invitations.chatroom_id) = 'mod'
                and group_invitations.as_role in ('member', 'viewer'))
               or utils.get_role_in_chatroom((select auth.uid()), group_invitations.chatroom_id) = 'admin')
              and utils.get_role_in_chatroom(group_invitations.invitee_id, group_invitations.chatroom_id) is null);
revoke insert on public.group_invitations from authenticated;
grant insert (invitee_id, chatroom_id, as_role) on public.group_invitations to authenticated;
create policy inv_delete_invitor on public.group_invitations for delete to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), group_invitations.chatroom_id) in ('admin', 'mod')
         and group_invitations.invitor_id = (select auth.uid()));
create policy inv_delete_admin on public.group_invitations for delete to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), group_invitations.chatroom_id) = 'admin'
         and utils.get_role_in_chatroom(group_invitations.invitor_id, group_invitations.chatroom_id) <> 'admin');
create policy inv_delete_invitee on public.group_invitations for delete to authenticated
  using (group_invitations.invitee_id = (select auth.uid()));

create policy profiles_read on public.profiles for select to authenticated, anon using (true);
revoke select on public.profiles from anon;
grant select (username) on public.profiles to anon;

create policy messages_select on public.messages for select to authenticated
  using (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) is not null);
create policy messages_insert on public.messages for insert to authenticated
  with check (utils.get_role_in_chatroom((select auth.uid()), chatroom_id) in ('member', 'mod', 'admin'));
revoke insert on public.messages from authenticated;
grant insert (id, content, chatroom_id) on public.messages to authenticated;
create policy messages_update on public.messages for update to authenticated
  using ((select auth.uid()) = user_id
         and utils.get_role_in_chatroom((select auth.uid()), chatroom_id) in ('member', 'mod', 'admin'));
revoke update on public.messages from authenticated;
grant update (content) on public.messages to authenticated;
create policy messages_delete on public.messages for delete to authenticated
  using ((select auth.uid()) = user_id and utils.get_role_in_chatroom((select auth.uid()), chatroom_id) is not null);

-- storage: user avatars (a public bucket) and chatroom avatars (private, named <chatroom id>.jpg)
insert into storage.buckets (id, name, public, allowed_mime_types, file_size_limit)
  values ('avatars', 'avatars', true, '{"image/*"}', 300000);
insert into storage.buckets (id, name, public, allowed_mime_types, file_size_limit)
  values ('chatroom_avatars', 'chatroom_avatars', false, '{"image/*"}', 300000);

create policy avatars_read on storage.objects for select to authenticated using (bucket_id = 'avatars');
create policy avatars_upload on storage.objects for insert to authenticated
  with check (bucket_id = 'avatars' and name = ('public/' || (select auth.uid())::text || '.jpg'));
create policy avatars_update on storage.objects for update to authenticated
  using (bucket_id = 'avatars' and owner_id::uuid = (select auth.uid()));
create policy avatars_delete on storage.objects for delete to authenticated
  using (bucket_id = 'avatars' and owner_id::uuid = (select auth.uid()));

create policy room_avatar_read on storage.objects for select to authenticated
  using (bucket_id = 'chatroom_avatars'
         and utils.get_role_in_chatroom((select auth.uid()), utils.get_filename_as_uuid(storage.filename(name)))
             is not null);
create policy room_avatar_upload on storage.objects for insert to authenticated
  with check (bucket_id = 'chatroom_avatars' and storage.extension(name) = 'jpg' and position('/' in name) = 0
              and utils.get_role_in_chatroom((select auth.uid()), utils.get_filename_as_uuid(storage.filename(name)))
                  = 'admin');
create policy room_avatar_update on storage.objects for update to authenticated
  using (bucket_id = 'chatroom_avatars'
         and utils.get_role_in_chatroom((select auth.uid()), utils.get_filename_as_uuid(storage.filename(name)))
             = 'admin');
create policy room_avatar_delete on storage.objects for delete to authenticated
  using (bucket_id = 'chatroom_avatars'
         and utils.get_role_in_chatroom((select auth.uid()), utils.get_filename_as_uuid(storage.filename(name)))
             = 'admin');

-- files keep their path and bucket once stored
create function public.prevent_storage_object_relocation() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.name is distinct from old.name then
    raise exception 'Changing the file path is not allowed';
  end if;
  if new.bucket_id is distinct from old.bucket_id then
    raise exception 'Changing the bucket_id is not allowed';
  end if;
  return new;
end
$$;
create trigger no_bucket_or_name_change before update on storage.objects
  for each row execute procedure public.prevent_storage_object_relocation();
