-- storage_objects_listable: a SELECT policy on storage.objects (Supabase Storage) that never looks at the
-- caller, so anyone it names can list and download every file of the bucket(s) it covers.
-- what: Finds permissive SELECT (or ALL) policies on storage.objects whose USING reads neither auth.uid() /
--   the sub claim, the object's owner, nor a folder derived from the caller (storage.foldername).
-- why: chat attachments and avatars live in buckets; a policy on bucket_id alone lets every user (or anon)
--   enumerate other rooms' and users' files, and a public bucket with such a policy is listable by the internet.
-- example: create policy "Anyone can view" on storage.objects for select using (bucket_id = 'attachments');
-- fix: tie the object to the caller or their room, e.g. using (bucket_id = 'attachments' and exists (select 1
--   from public.room_members m where m.user_id = (select auth.uid())
--   and m.room_id::text = (storage.foldername(name))[1]))
select 'storage_objects_listable' as name,
       'WARN' as level,
       format('%I.%I', p.schemaname, p.tablename)
         || coalesce(' bucket ' || substring(p.qual from 'bucket_id\s*=\s*''([^'']+)'''), '') as object,
       format('policy %I (%s, to %s) lets its roles list files without looking at the caller: %s', p.policyname,
              p.cmd, array_to_string(p.roles, ', '), p.qual) as detail
  from pg_policies p
 where p.schemaname = 'storage' and p.tablename = 'objects'
   and p.permissive = 'PERMISSIVE'
   and p.cmd in ('SELECT', 'ALL')
   and coalesce(p.qual, 'true') !~* '(auth\.uid\(\)|''sub''|request\.jwt\.claim\.sub|\mowner(_id)?\M|foldername)'
 order by object, p.policyname
