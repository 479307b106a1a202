-- security_definer_executable_by_anon: a SECURITY DEFINER function that the anon role may execute.
-- Through PostgREST (/rpc) or any API that runs as anon, an unauthenticated caller runs it with its
-- owner's privileges, past every policy. Trigger functions cannot be called directly and are skipped.
select 'security_definer_executable_by_anon' as name,
       'ERROR' as level,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) as object,
       'SECURITY DEFINER, executable by anon; search_path '
         || coalesce((select cfg.setting from unnest(p.proconfig) as cfg(setting)
                       where cfg.setting like 'search\_path=%' limit 1), 'not set') as detail
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_roles anon on anon.rolname = 'anon'
 where p.prosecdef
   and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)
   and has_function_privilege(anon.oid, p.oid, 'execute')
   and has_schema_privilege(anon.oid, n.oid, 'usage')
   and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                         'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                         'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and n.nspname not like 'pg\_%'
   and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
 order by object
