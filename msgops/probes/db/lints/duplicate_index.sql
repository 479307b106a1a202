-- duplicate_index: two indexes on the same table with the same columns, operator classes, collations,
-- expressions and predicate. Each write maintains both; only one is ever useful.
select 'duplicate_index' as name,
       'WARN' as level,
       format('%I.%I', n.nspname, t.relname) as object,
       format('indexes %I and %I are identical: %s', ia.relname, ib.relname,
              pg_get_indexdef(a.indexrelid)) as detail
  from pg_index a
  join pg_index b on b.indrelid = a.indrelid and b.indexrelid > a.indexrelid
  join pg_class ia on ia.oid = a.indexrelid
  join pg_class ib on ib.oid = b.indexrelid
  join pg_class t on t.oid = a.indrelid
  join pg_namespace n on n.oid = t.relnamespace
 where ia.relam = ib.relam
   and a.indkey::text = b.indkey::text
   and a.indclass::text = b.indclass::text
   and a.indcollation::text = b.indcollation::text
   and a.indoption::text = b.indoption::text
   and coalesce(pg_get_expr(a.indexprs, a.indrelid), '') = coalesce(pg_get_expr(b.indexprs, b.indrelid), '')
   and coalesce(pg_get_expr(a.indpred, a.indrelid), '') = coalesce(pg_get_expr(b.indpred, b.indrelid), '')
   and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                         'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                         'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and n.nspname not like 'pg\_%'
 order by object, detail
