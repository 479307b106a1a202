-- rls_not_forced: RLS is enabled but not forced on a table whose owner is not a superuser.
-- what: Finds exposed tables with row level security on, FORCE off, owned by a role without SUPERUSER.
-- why: the owner bypasses the table's policies; functions owned by it (SECURITY DEFINER helpers, triggers)
--   and any service that connects as the owner read and write every row, whatever the policies say.
-- example: alter table public.messages enable row level security;  -- owner "app" still sees everything
-- fix: alter table public.messages force row level security; (and give the owner BYPASSRLS explicitly
--   only where a job must see everything).
select 'rls_not_forced' as name,
       'INFO' as level,
       format('%I.%I', n.nspname, c.relname) as object,
       format('row level security is on but not forced; the owner %I (not a superuser) bypasses every policy',
              pg_get_userbyid(c.relowner)) as detail
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_roles o on o.oid = c.relowner
 where n.nspname = 'public'
   and c.relkind in ('r', 'p')
   and c.relrowsecurity
   and not c.relforcerowsecurity
   and not o.rolsuper
   and not o.rolbypassrls
 order by object
