-- A caller's profile row in one statement, the first time a service process sees the caller: it takes
-- the request's role and JWT claims for its own transaction, as send_room_message_as() does, so an
-- autocommit call is the whole transaction (one round trip instead of begin, claims, insert, commit).
-- RLS on profiles still decides the insert: a caller can only create their own row. Only the
-- service's connecting role may call it.
create or replace function public.ensure_profile_as(db_role text, claims text, profile_id uuid,
                                                    profile_email text, name text)
returns void
language plpgsql
-- No SET clause: it would undo the role change when the function returns.
as $$
begin
  perform pg_catalog.set_config('role', db_role, true), pg_catalog.set_config('request.jwt.claims', claims, true);
  insert into public.profiles (id, email, display_name) values (profile_id, profile_email, name)
  on conflict (id) do nothing;
end
$$;

revoke execute on function public.ensure_profile_as(text, text, uuid, text, text) from public;
