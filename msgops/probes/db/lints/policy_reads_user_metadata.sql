-- policy_reads_user_metadata: a policy reads user_metadata (raw_user_meta_data), which users edit themselves.
-- what: Finds policies whose USING / WITH CHECK mentions user_metadata or raw_user_meta_data.
-- why: in Supabase Auth any signed-in user may change their own user_metadata (supabase.auth.updateUser),
--   so a policy trusting it ("role": "admin" there) lets anyone grant themselves that access.
-- example: using ((auth.jwt() -> 'user_metadata' ->> 'role') = 'admin')
-- fix: keep authorization data in app_metadata (set by the server only) or in a table the user cannot write,
--   e.g. using (exists (select 1 from public.staff s where s.user_id = (select auth.uid())))
select 'policy_reads_user_metadata' as name,
       'ERROR' as level,
       format('%I.%I', p.schemaname, p.tablename) as object,
       format('policy %I (%s) reads user-editable metadata: %s', p.policyname, p.cmd,
              concat_ws(' / ', p.qual, p.with_check)) as detail
  from pg_policies p
 where p.schemaname not in ('pg_catalog', 'information_schema')
   and concat_ws(' ', p.qual, p.with_check) ~* '(user_metadata|raw_user_meta_data)'
 order by object, p.policyname
