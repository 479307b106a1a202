-- rls_policy_always_true: a permissive policy whose USING or WITH CHECK is literally `true`.
-- On INSERT/UPDATE/DELETE (or ALL) it lets every role it names write every row; on SELECT for anon
-- (or PUBLIC) it publishes the table to the internet. Reference data (a table with no uuid column,
-- such as a list of roles) may be readable by everyone; user data may not.
select 'rls_policy_always_true' as name,
       'WARN' as level,
       format('%I.%I', p.schemaname, p.tablename) as object,
       format('policy %I (%s, to %s) has %s', p.policyname, p.cmd, array_to_string(p.roles, ', '),
              concat_ws(' and ',
                        case when p.qual = 'true' then 'USING (true)' end,
                        case when p.with_check = 'true' then 'WITH CHECK (true)' end)) as detail
  from pg_policies p
  join pg_namespace n on n.nspname = p.schemaname
  join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
 where p.permissive = 'PERMISSIVE'
   and p.schemaname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                            'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                            'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and (
     (p.cmd in ('INSERT', 'UPDATE', 'DELETE', 'ALL') and (p.qual = 'true' or p.with_check = 'true'))
     or (p.cmd in ('SELECT', 'ALL') and p.qual = 'true'
         and p.roles && array['anon', 'public']::name[]
         and exists (select 1 from pg_attribute a
                      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                        and a.atttypid = 'uuid'::regtype))
   )
 order by object, p.policyname
