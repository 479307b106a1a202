-- rls_enabled_no_policy: Row Level Security is on but no policy exists, so every API role is denied
-- every row. Usually a policy was forgotten (or dropped by a migration); deny-all is rarely the intent
-- for a table in an exposed schema.
select 'rls_enabled_no_policy' as name,
       'INFO' as level,
       format('%I.%I', n.nspname, c.relname) as object,
       'row level security is enabled but the table has no policy: API roles see and change nothing'
         as detail
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p')
   and c.relrowsecurity
   and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
   and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                         'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                         'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and n.nspname not like 'pg\_%'
 order by object
