-- role_only_policy: a policy that decides by the caller's role alone (auth.role(), the JWT's role claim,
-- current_user) and never reads the row or who the caller is.
-- what: Finds permissive policies whose USING / WITH CHECK mentions the caller's role and neither a column
--   of the table nor auth.uid() / auth.email() / the sub claim.
-- why: "signed in" is not "allowed": every authenticated user reads (or writes) every row, whoever owns it;
--   and a token without a role claim locks members out.
-- example: create policy "read" on public.messages for select using (auth.role() = 'authenticated');
-- fix: test the row against the caller, e.g. using (exists (select 1 from public.channel_members m
--   where m.channel_id = messages.channel_id and m.user_id = (select auth.uid()))), and grant the command
--   to the role instead of testing it (create policy ... to authenticated).
select 'role_only_policy' as name,
       'WARN' as level,
       format('%I.%I', p.schemaname, p.tablename) as object,
       format('policy %I (%s, to %s) decides by the caller''s role only: %s', p.policyname, p.cmd,
              array_to_string(p.roles, ', '), concat_ws(' / ', p.qual, p.with_check)) as detail
  from pg_policies p
  join pg_namespace n on n.nspname = p.schemaname
  join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
 where p.permissive = 'PERMISSIVE'
   and p.schemaname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                            'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                            'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and concat_ws(' ', p.qual, p.with_check) ~* '(auth\.role\(\)|auth\.jwt\(\)\s*->>\s*''role''|current_user|current_role|session_user|''request\.jwt\.claim\.role'')'
   and concat_ws(' ', p.qual, p.with_check) !~* '(auth\.uid\(\)|auth\.email\(\)|''sub''|request\.jwt\.claim\.sub)'
   and not exists (select 1 from pg_attribute a
                    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                      and concat_ws(' ', p.qual, p.with_check) ~ ('\m' || a.attname || '\M')
                      and a.attname not in ('role'))
 order by object, p.policyname
