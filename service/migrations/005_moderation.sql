-- Moderation: moderators and admins work reports on messages they are not members of, through
-- functions that check their role, rather than through policies that would widen every read.

create or replace function public.moderation_queue(max_rows integer default 100)
returns table (report_id uuid, message_id uuid, community_message_id uuid, reporter_id uuid, reason text,
               report_status text, content text, sender_id uuid, created_at timestamptz)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if (select public.app_role()) not in ('moderator', 'admin') or (select public.app_role()) is null then
    raise exception 'moderators and admins only' using errcode = '42501';
  end if;
  return query
    select r.id, r.message_id, r.community_message_id, r.reporter_id, r.reason, r.report_status,
           coalesce(m.content, cm.content), coalesce(m.sender_id, cm.sender_id), r.created_at
      from public.reported_messages r
      left join public.messages m on m.id = r.message_id
      left join public.community_messages cm on cm.id = r.community_message_id
     where r.report_status = 'pending'
     order by r.created_at
     limit max_rows;
end
$$;

-- Soft delete by a moderator/admin: the content leaves the database, the placeholder row stays.
create or replace function public.moderate_delete_message(target uuid) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  me uuid := (select auth.uid());
  done boolean := false;
begin
  if (select public.app_role()) not in ('moderator', 'admin') or (select public.app_role()) is null then
    raise exception 'moderators and admins only' using errcode = '42501';
  end if;
  update public.messages set content = null, is_deleted = true, deleted_by = me
   where id = target and not is_deleted;
  done := found;
  if not done then
    update public.community_messages set content = null, is_deleted = true, deleted_by = me
     where id = target and not is_deleted;
    done := found;
  end if;
  update public.reported_messages set report_status = 'resolved', resolved_by = me, resolved_at = now()
   where (message_id = target or community_message_id = target) and report_status = 'pending';
  return done;
end
$$;

grant execute on function public.moderation_queue(integer), public.moderate_delete_message(uuid)
  to authenticated, service_role;
