-- Jobs and moderation: the record of background job runs and moderator helpers.

-- One row per finished job run (ok or error), written by service/jobs.py on a privileged connection.
-- Outside `public`: the API roles never see it; the service role reads it for GET /admin/jobs.
create schema if not exists msgops_meta;
create table if not exists msgops_meta.job_runs (
  id          bigint generated always as identity primary key,
  job         text not null,
  started_at  timestamptz not null,
  finished_at timestamptz not null,
  affected    integer not null default 0,
  outcome     text not null check (outcome in ('ok', 'error')),
  error       text
);
create index if not exists idx_job_runs_job_started on msgops_meta.job_runs (job, started_at desc);
grant usage on schema msgops_meta to service_role;
grant select on msgops_meta.job_runs to service_role;

-- One pending report per reporter and message: repeated reports are a 409, not queue noise.
create unique index if not exists idx_reported_messages_one_pending
  on public.reported_messages (reporter_id, coalesce(message_id, community_message_id))
  where report_status = 'pending';

-- Where a message lives, for moderators who are not members of its conversation or community
-- (RLS hides it from them): the API needs it to publish the realtime update after a moderation delete.
create or replace function public.moderated_message_ref(target uuid)
returns table (channel text, container_id uuid, seq bigint, is_deleted boolean)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if coalesce((select public.app_role()) in ('moderator', 'admin'), false) is false then
    raise exception 'moderators and admins only' using errcode = '42501';
  end if;
  return query
    select 'direct'::text, m.conversation_id, m.seq, m.is_deleted from public.messages m where m.id = target
    union all
    select 'community'::text, c.community_id, c.seq, c.is_deleted
      from public.community_messages c where c.id = target;
end
$$;

-- Dismiss a pending report (moderators and admins); no row when there is no such pending report.
create or replace function public.dismiss_report(report uuid)
returns table (id uuid, message_id uuid, community_message_id uuid, reason text, report_status text,
               resolved_by uuid, resolved_at timestamptz, created_at timestamptz)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  if coalesce((select public.app_role()) in ('moderator', 'admin'), false) is false then
    raise exception 'moderators and admins only' using errcode = '42501';
  end if;
  return query
    update public.reported_messages r
       set report_status = 'dismissed', resolved_by = (select auth.uid()), resolved_at = now()
     where r.id = report and r.report_status = 'pending'
    returning r.id, r.message_id, r.community_message_id, r.reason, r.report_status, r.resolved_by,
              r.resolved_at, r.created_at;
end
$$;

grant execute on function public.moderated_message_ref(uuid), public.dismiss_report(uuid)
  to authenticated, service_role;
