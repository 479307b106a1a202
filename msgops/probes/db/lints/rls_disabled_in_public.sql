-- rls_disabled_in_public: a table in the API-exposed schema `public` without Row Level Security.
-- Whoever holds a grant on it (anon, authenticated through PostgREST or the API) reads and writes
-- every row: no policy is consulted.
select 'rls_disabled_in_public' as name,
       'ERROR' as level,
       format('%I.%I', n.nspname, c.relname) as object,
       'row level security is disabled; API roles with privileges on it: '
         || coalesce((select string_agg(r.rolname, ', ' order by r.rolname)
                        from pg_roles r
                       where r.rolname in ('anon', 'authenticated')
                         and has_table_privilege(r.oid, c.oid, 'select, insert, update, delete')), 'none')
         as detail
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'public'
   and c.relkind in ('r', 'p')
   and not c.relrowsecurity
 order by object
