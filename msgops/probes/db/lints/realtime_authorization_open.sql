-- realtime_authorization_open: a policy on realtime.messages (Supabase Realtime Authorization for private
-- channels) that lets a caller join or send on any channel, whatever its topic.
-- what: Finds permissive policies on realtime.messages whose USING / WITH CHECK reads neither the topic
--   (realtime.topic(), the topic column) nor who the caller is (auth.uid(), the sub claim).
-- why: private channels are authorized by these policies alone; one that only tests the role (or is true)
--   lets every signed-in user subscribe to every room's broadcasts and presence, members or not.
-- example: create policy "auth can read" on realtime.messages for select to authenticated using (true);
-- fix: tie the topic to a membership, e.g. using (exists (select 1 from public.room_members m
--   where m.user_id = (select auth.uid()) and 'room:' || m.room_id::text = (select realtime.topic())))
select 'realtime_authorization_open' as name,
       'ERROR' as level,
       format('%I.%I', p.schemaname, p.tablename) as object,
       format('policy %I (%s, to %s) does not look at the topic or the caller: %s', p.policyname, p.cmd,
              array_to_string(p.roles, ', '), coalesce(concat_ws(' / ', p.qual, p.with_check), 'true')) as detail
  from pg_policies p
 where p.schemaname = 'realtime' and p.tablename = 'messages'
   and p.permissive = 'PERMISSIVE'
   and coalesce(concat_ws(' ', p.qual, p.with_check), 'true')
       !~* '(realtime\.topic\(\)|\mtopic\M|auth\.uid\(\)|''sub''|request\.jwt\.claim\.sub)'
 order by object, p.policyname
