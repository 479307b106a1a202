"""Supabase Storage in the model-generated RLS matrix (db.rls_model): the path convention is read from the
bucket's policies, a file is arranged under it, and the outsider and anon cannot list, read, overwrite,
delete or plant files there; a bucket policy that lets any signed-in user read fails naming the bucket."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from msgops.dbmodel.storage import conventions
from msgops.results import Outcome
from tests.test_corpus import apply
from tests.test_probes_db import assert_fails_naming, check, sql

NewDatabase = Callable[..., str]
BUCKET = "storage.objects bucket attachments"
# a private bucket keyed on the user's folder, as Supabase's guides write it
SOUND = [
    "insert into storage.buckets (id, name, public) values ('attachments', 'attachments', false)",
    *(f"create policy attachments_{cmd} on storage.objects for {cmd} to authenticated "
      f"{'with check' if cmd == 'insert' else 'using'} "
      "(bucket_id = 'attachments' and (storage.foldername(name))[1] = (select auth.uid())::text)"
      for cmd in ("select", "insert", "update", "delete")),
]


def storage_cells(outcome: Outcome, bucket: str = BUCKET) -> dict[tuple[str, str], str]:
    return {(c["persona"], c["op"]): c["outcome"] for c in outcome.evidence["cells"] if c["object"] == bucket}


async def test_a_sound_bucket_passes_and_each_persona_is_tried(new_database: NewDatabase) -> None:
    url = apply(new_database, "group_chatrooms")
    sql(url, *SOUND)
    outcome = await check(url, "db.rls_model")
    cells = storage_cells(outcome)
    assert cells[("other", "select")] == "allowed"  # the control: the convention read from the policies holds
    for who in ("outsider", "anon"):
        for op in ("select", "insert", "update", "delete"):
            assert cells[(who, op)].startswith("denied"), (who, op, cells)
    assert not [f for f in outcome.evidence["findings"] if f["object"] == BUCKET]


BREAKS: list[tuple[str, list[str]]] = [
    ("outsider_reads", ["create policy any_reader on storage.objects for select to authenticated "
                        "using (bucket_id = 'attachments')"]),
    ("storage_listable", ["update storage.buckets set public = true where id = 'attachments'",
                          "create policy anyone on storage.objects for select using (bucket_id = 'attachments')"]),
    ("outsider_writes", ["create policy any_upload on storage.objects for insert to authenticated "
                         "with check (bucket_id = 'attachments')"]),
    ("outsider_writes", ["create policy any_delete on storage.objects for delete to authenticated "
                         "using (bucket_id = 'attachments')",
                         "create policy any_reader on storage.objects for select to authenticated "
                         "using (bucket_id = 'attachments')"]),
]


@pytest.mark.parametrize(("kind", "statements"), BREAKS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BREAKS)])
async def test_a_bucket_policy_that_opens_files_fails_naming_the_bucket(new_database: NewDatabase, kind: str,
                                                                         statements: list[str]) -> None:
    url = apply(new_database, "group_chatrooms")
    sql(url, *SOUND, *statements)
    outcome = await check(url, "db.rls_model")
    assert_fails_naming(outcome, BUCKET)
    assert (kind, BUCKET) in {(f["kind"], f["object"]) for f in outcome.evidence["findings"]}


@pytest.mark.parametrize(("text", "expected"), [
    ("((bucket_id = 'a'::text) AND ((auth.uid())::text = (storage.foldername(name))[1]))", ("user", 1)),
    ("((bucket_id = 'a'::text) AND ((storage.foldername(name))[2] = ( SELECT (auth.uid())::text AS uid)))",
     ("user", 2)),
    ("((bucket_id = 'a'::text) AND (split_part(name, '/'::text, 1) = (auth.uid())::text))", ("user", 1)),
    ("((bucket_id = 'a'::text) AND (EXISTS ( SELECT 1 FROM room_members m WHERE ((m.room_id)::text = "
     "(storage.foldername(objects.name))[1]) AND (m.user_id = auth.uid())))))", ("room", 1)),
    ("((bucket_id = 'a'::text) AND (utils.role_in(auth.uid(), utils.as_uuid(storage.filename(name))) IS NOT NULL))",
     ("room", 0)),
])
def test_the_path_convention_is_read_from_the_policy(text: str, expected: tuple[str, int]) -> None:
    found = conventions([text])
    assert [(c.keyed, c.folder) for c in found] == [expected], found


def test_a_name_template_gives_the_exact_path() -> None:
    text = ("((bucket_id = 'avatars'::text) AND (name = (('public/'::text || (( SELECT auth.uid() AS uid))::text) "
            "|| '.jpg'::text)))")
    (c,) = conventions([text])
    assert c.path("u1", "x") == "public/u1.jpg"


CHANNEL_FILES = "storage.objects bucket channel-files"
IN_THE_CHANNEL = ("exists (select 1 from public.memberships m where m.channel_id::text = (storage.foldername(name))[1] "
                  "and m.user_id = (select auth.uid()))")


async def test_a_bucket_keyed_on_the_room_is_read_by_its_members_only(new_database: NewDatabase) -> None:
    """Files under <channel id>/ readable by the channel's members: the file is arranged under the arranged
    channel, the member reads it, the outsider (a member of a channel of their own) does not; a policy that
    asks for a membership of any channel fails naming the bucket."""
    url = apply(new_database, "channels_memberships")
    sql(url, "insert into storage.buckets (id, name, public) values ('channel-files', 'channel-files', false)",
        "create policy channel_files_read on storage.objects for select to authenticated "
        f"using (bucket_id = 'channel-files' and {IN_THE_CHANNEL})")
    outcome = await check(url, "db.rls_model")
    cells = storage_cells(outcome, CHANNEL_FILES)
    assert cells[("member", "select")] == "allowed" and cells[("outsider", "select")].startswith("denied")
    assert not [f for f in outcome.evidence["findings"] if f["object"] == CHANNEL_FILES]
    sql(url, "alter policy channel_files_read on storage.objects using (bucket_id = 'channel-files' and exists ("
             "select 1 from public.memberships m where m.user_id = (select auth.uid())))")
    outcome = await check(url, "db.rls_model")
    assert_fails_naming(outcome, CHANNEL_FILES)
    assert ("outsider_reads", CHANNEL_FILES) in {(f["kind"], f["object"]) for f in outcome.evidence["findings"]}
