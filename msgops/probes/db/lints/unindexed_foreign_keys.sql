-- unindexed_foreign_keys: a foreign key whose columns do not lead any index of the referencing table.
-- Every delete or key update on the referenced table then scans the whole referencing table (and
-- joins along the key do too).
select 'unindexed_foreign_keys' as name,
       'WARN' as level,
       format('%I.%I', n.nspname, c.relname) as object,
       format('foreign key %I (%s) references %s has no index starting with its columns',
              con.conname,
              (select string_agg(a.attname, ', ' order by k.ord)
                 from unnest(con.conkey) with ordinality as k(attnum, ord)
                 join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum),
              con.confrelid::regclass::text) as detail
  from pg_constraint con
  join pg_class c on c.oid = con.conrelid
  join pg_namespace n on n.oid = c.relnamespace
 where con.contype = 'f'
   and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime', '_realtime',
                         'extensions', 'graphql', 'graphql_public', 'pgsodium', 'pgsodium_masks', 'vault',
                         'supabase_functions', 'supabase_migrations', 'net', 'cron', 'pgbouncer', 'pgtle')
   and n.nspname not like 'pg\_%'
   and not exists (
     select 1
       from pg_index i
      where i.indrelid = con.conrelid
        -- the first n key columns of the index are the n columns of the key, in any order
        and (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(con.conkey)] @> con.conkey
        and (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(con.conkey)] <@ con.conkey
   )
 order by object, detail
