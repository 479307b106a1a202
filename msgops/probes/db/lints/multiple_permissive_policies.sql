-- multiple_permissive_policies: more than one permissive policy for the same table, role and command.
-- PostgreSQL ORs them and evaluates every one for every row: slower, and a loose policy silently
-- widens a strict one. Merge them into one policy per role and command.
with expanded as (
  select n.nspname as schema, c.relname as tbl, p.polname,
         coalesce(r.rolname, api.rolname) as role,
         cmd.name as command
    from pg_policy p
    join pg_class c on c.oid = p.polrelid
    join pg_namespace n on n.oid = c.relnamespace
    cross join lateral unnest(p.polroles) as pr(oid)
    left join pg_roles r on r.oid = pr.oid and pr.oid <> 0
    -- a policy TO PUBLIC applies to every API role
    left join pg_roles api on pr.oid = 0 and api.rolname in ('anon', 'authenticated')
    cross join lateral (
      select x.name from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) as x(name)
       where p.polcmd = '*'
          or x.name = case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT'
                                    when 'w' then 'UPDATE' when 'd' then 'DELETE' end
    ) as cmd
   where p.polpermissive
     and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                           'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                           'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
)
select 'multiple_permissive_policies' as name,
       'WARN' as level,
       format('%I.%I', schema, tbl) as object,
       format('role %s, %s: %s permissive policies (%s)', role, command, count(*),
              string_agg(polname, ', ' order by polname)) as detail
  from expanded
 where role is not null
 group by schema, tbl, role, command
having count(*) > 1
 order by object, detail
