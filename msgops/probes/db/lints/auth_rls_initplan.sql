-- auth_rls_initplan: a policy calls auth.uid(), auth.jwt(), auth.role() or current_setting() directly
-- instead of through `(select ...)`. Unwrapped, the call runs once per row; wrapped, the planner runs
-- it once per statement (an InitPlan). On large tables the difference is 10-1000x.
with checked as (
  select p.schemaname, p.tablename, p.policyname, p.cmd, e.clause, e.expr,
         -- drop the wrapped forms as PostgreSQL prints them, e.g. "( SELECT auth.uid() AS uid)"
         regexp_replace(e.expr,
           '\(\s*select\s+(auth\.(uid|jwt|role)\(\)|current_setting\([^()]*\)|\(auth\.jwt\(\)[^()]*\))(\s+as\s+\w+)?\s*\)',
           '', 'gi') as unwrapped
    from pg_policies p
    cross join lateral (values ('USING', p.qual), ('WITH CHECK', p.with_check)) as e(clause, expr)
   where e.expr is not null
     and p.schemaname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                              'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                              'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
)
select 'auth_rls_initplan' as name,
       'WARN' as level,
       format('%I.%I', schemaname, tablename) as object,
       format('policy %I (%s) calls %s per row in %s: %s', policyname, cmd,
              (regexp_match(unwrapped, '(auth\.(uid|jwt|role)\(\)|current_setting\()', 'i'))[1],
              clause, left(expr, 300)) as detail
  from checked
 where unwrapped ~* '(auth\.(uid|jwt|role)\(\)|current_setting\()'
 order by object, detail
