-- table_without_primary_key: an exposed table has no primary key.
-- what: Finds tables in public without a PRIMARY KEY constraint.
-- why: rows cannot be addressed one by one (PostgREST updates and deletes by filter, realtime cannot
--   identify the changed row without REPLICA IDENTITY FULL, logical replication refuses UPDATE/DELETE),
--   and duplicates creep in.
-- example: create table public.messages (room_id text, body text);
-- fix: alter table public.messages add column id bigint generated always as identity primary key;
select 'table_without_primary_key' as name,
       'INFO' as level,
       format('%I.%I', n.nspname, c.relname) as object,
       'the table has no primary key' as detail
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'public'
   and c.relkind in ('r', 'p')
   and not exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'p')
 order by object
