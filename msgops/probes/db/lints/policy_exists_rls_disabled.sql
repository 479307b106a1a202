-- policy_exists_rls_disabled: policies written for a table whose Row Level Security is off.
-- The policies look like protection in a review but PostgreSQL ignores them.
select 'policy_exists_rls_disabled' as name,
       'ERROR' as level,
       format('%I.%I', n.nspname, c.relname) as object,
       'row level security is disabled but policies exist: '
         || string_agg(p.polname, ', ' order by p.polname) as detail
  from pg_policy p
  join pg_class c on c.oid = p.polrelid
  join pg_namespace n on n.oid = c.relnamespace
 where not c.relrowsecurity
   and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                         'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                         'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
 group by n.nspname, c.relname
 order by object
