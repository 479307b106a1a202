-- contact_columns_readable: an email or phone column that other users (or anon) can read.
-- what: Finds email/phone columns of public tables that anon or authenticated may SELECT, on a table without
--   row level security or with a permissive SELECT policy for them that never looks at the caller.
-- why: a messaging app shows names, not contact details; a readable email column lets any user (or the
--   internet, through the anon key) harvest every member's address.
-- example: create policy "profiles are public" on public.profiles for select using (true);  -- with an email column
-- fix: move contact columns to a table only its owner reads, or revoke the column
--   (revoke select (email) on public.profiles from anon, authenticated) and expose it through a view or function.
select 'contact_columns_readable' as name,
       'WARN' as level,
       format('%I.%I.%I', n.nspname, c.relname, a.attname) as object,
       format('%I is readable by %s (%s)', a.attname,
              concat_ws(' and ',
                case when exists (select 1 from pg_roles where rolname = 'anon')
                      and has_column_privilege('anon', c.oid, a.attnum, 'SELECT') then 'anon' end,
                case when exists (select 1 from pg_roles where rolname = 'authenticated')
                      and has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT') then 'authenticated' end),
              case when not c.relrowsecurity then 'row level security is off'
                   else 'a SELECT policy does not look at the caller' end) as detail
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
 where n.nspname = 'public'
   and c.relkind in ('r', 'p')
   and a.attname ~* '^(e_?mail(_address)?|phone(_number)?|mobile(_number)?|telephone)$'
   and ((exists (select 1 from pg_roles where rolname = 'anon') and has_column_privilege('anon', c.oid, a.attnum, 'SELECT'))
        or (exists (select 1 from pg_roles where rolname = 'authenticated')
            and has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT')))
   and (not c.relrowsecurity
        or exists (select 1 from pg_policies p
                    where p.schemaname = n.nspname and p.tablename = c.relname and p.permissive = 'PERMISSIVE'
                      and p.cmd in ('SELECT', 'ALL')
                      and p.roles && array['anon', 'authenticated', 'public']::name[]
                      and coalesce(p.qual, 'true') !~* '(auth\.uid\(\)|auth\.email\(\)|''sub''|request\.jwt\.claim)'))
 order by object
