-- function_search_path_mutable: a SECURITY DEFINER function without a fixed search_path. It runs with
-- its owner's privileges but resolves unqualified names through the caller's search_path, so a caller
-- who can create objects (a temporary table or function shadows the real one) runs code as the owner.
select 'function_search_path_mutable' as name,
       'WARN' as level,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as object,
       'SECURITY DEFINER without SET search_path (proconfig: '
         || coalesce(array_to_string(p.proconfig, ', '), 'none') || ')' as detail
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
 where p.prosecdef
   and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) as cfg(setting)
                    where cfg.setting like 'search\_path=%')
   and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                         'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                         'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and n.nspname not like 'pg\_%'
   and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')  -- extension-owned
 order by object
