"""The API map: how the operations probes use are called on this target (msgops.yaml `api:`).

    api:
      defaults: none                  # reference (default): unlisted operations use the reference's routes
      operations:
        create_group:
          request: "POST /api/rooms"
          json: {name: "{title}", members: "{member_ids}"}
          response: {id: room.roomId}            # msgops's field <- a dotted path in the target's JSON
        list_messages:
          request: "GET /api/rooms/{conversation_id}/posts?limit={limit}&before={before}"
          response: {messages: posts, has_more: more}
          items: {messages: {id: postId, content: text}}   # each list item's field <- a path in the item
        report: null                   # the target has no such operation: its checks are skipped
        upload_attachment:
          request: "POST /api/rooms/{conversation_id}/files"
          multipart: {blob: "{file}", room: "{conversation_id}"}   # "{file}": the file part
          response: {id: file.fileId}

A JSON value that is exactly one placeholder ("{member_ids}") takes the value as it is (a list, a
number); placeholders inside longer strings are replaced by text; a query pair or JSON field whose
placeholder has no value is left out. A file goes up as a multipart form (`multipart:`, the field whose
value is "{file}" is the file, named {filename}, of type {content_type}) or as the whole body
(`content: "{file}"`, with `headers: {Content-Type: "{content_type}"}`). An operation the map does not
have makes the probe that needs it `skip` "not part of this API". docs/api-map.md lists the operations
and the fields read from each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from msgops import placeholders
from msgops.errors import UserError

if TYPE_CHECKING:
    import httpx

    from msgops.probes.context import Context, ProbeUser

# operation -> the values a probe passes for it
OPERATIONS: dict[str, frozenset[str]] = {
    # conversations
    "create_direct": frozenset({"user_id"}),
    "create_group": frozenset({"title", "member_ids"}),
    "add_member": frozenset({"conversation_id", "user_id"}),
    "remove_member": frozenset({"conversation_id", "user_id"}),
    "list_conversations": frozenset({"archived", "cursor", "limit"}),
    "get_conversation": frozenset({"conversation_id"}),
    "archive_conversation": frozenset({"conversation_id", "archived"}),
    # messages
    "send_message": frozenset({"conversation_id", "content", "client_msg_id", "parent_id"}),
    "list_messages": frozenset({"conversation_id", "limit", "before", "after", "since_seq"}),
    "get_message": frozenset({"conversation_id", "message_id"}),
    "edit_message": frozenset({"conversation_id", "message_id", "content"}),
    "delete_message": frozenset({"conversation_id", "message_id"}),
    "search": frozenset({"conversation_id", "query"}),
    "mark_read": frozenset({"conversation_id", "message_id", "seq"}),
    # moderation, roles and broadcasts
    "report": frozenset({"conversation_id", "message_id", "reason"}),
    "list_reports": frozenset({"limit"}),
    "moderator_delete_message": frozenset({"conversation_id", "message_id"}),
    "set_role": frozenset({"user_id", "role"}),
    "broadcast": frozenset({"audience", "phase", "content"}),
    "list_broadcasts": frozenset({"phase", "limit"}),
    # communities
    "create_community": frozenset({"name", "description", "is_private"}),
    "list_communities": frozenset({"query"}),
    "get_community": frozenset({"community_id"}),
    "join_community": frozenset({"community_id"}),
    "leave_community": frozenset({"community_id"}),
    "list_community_members": frozenset({"community_id"}),
    "send_community_message": frozenset({"community_id", "content"}),
    "list_community_messages": frozenset({"community_id"}),
}

_MESSAGE = frozenset({"id", "seq", "content", "is_deleted", "edited_at", "client_msg_id", "highlight"})
# operation -> the fields probes read from its answer: a scalar (None) or a list of items with these fields.
# `response:` and `items:` may only name these (for an operation listed neither here nor in _READS_NOTHING,
# only their paths are checked).
RETURNS: dict[str, dict[str, frozenset[str] | None]] = {
    "create_direct": {"id": None},
    "create_group": {"id": None},
    "list_conversations": {"conversations": frozenset({"id", "title", "unread_count"})},
    "get_conversation": {"id": None, "title": None},
    "archive_conversation": {"archived": None},
    "send_message": {"id": None, "seq": None, "content": None},
    "list_messages": {"messages": _MESSAGE, "has_more": None},
    "get_message": {"id": None, "seq": None, "content": None, "is_deleted": None, "edited_at": None},
    "edit_message": {"id": None, "content": None, "edited_at": None},
    "search": {"results": _MESSAGE},
    "mark_read": {"unread_count": None},
    "report": {"id": None, "report_status": None},
    "list_reports": {"reports": frozenset({"report_id"})},
    "moderator_delete_message": {"deleted": None},
    "broadcast": {"id": None},
    "list_broadcasts": {"broadcasts": frozenset({"id"})},
    "create_community": {"id": None, "my_role": None, "member_count": None},
    "list_communities": {"communities": frozenset({"id"})},
    "get_community": {"id": None, "name": None, "description": None, "member_count": None},
    "list_community_members": {"members": frozenset({"user_id"})},
    "send_community_message": {"id": None, "content": None},
    "list_community_messages": {"messages": frozenset({"id", "content"})},
}
# operations whose answers msgops does not read (a mapping for them is a mistake)
_READS_NOTHING = frozenset({"add_member", "remove_member", "delete_message", "set_role", "join_community",
                            "leave_community"})
# Attachments, notifications (of conversations and channels) and web push (http.attachments,
# http.notifications).
OPERATIONS.update({
    "upload_attachment": frozenset({"conversation_id", "file", "filename", "content_type"}),
    "attachment_url": frozenset({"attachment_id"}),
    "attach_attachment": frozenset({"attachment_id", "message_id"}),
    "delete_attachment": frozenset({"attachment_id"}),
    "set_display_name": frozenset({"display_name"}),
    "list_notifications": frozenset(),
    "set_room_notifications": frozenset({"conversation_id", "level", "muted_until"}),
    "set_community_notifications": frozenset({"community_id", "level", "muted_until"}),
    "subscribe_push": frozenset({"endpoint", "p256dh", "auth"}),
})
RETURNS.update({
    "upload_attachment": {"id": None, "kind": None, "duration_ms": None},
    "attachment_url": {"url": None, "url_expires_at": None, "thumbnail_url": None, "width": None},
    "list_notifications": {"items": frozenset()},  # an item is about a message when it names its id anywhere
})
_READS_NOTHING |= {"attach_attachment", "delete_attachment", "set_display_name", "set_room_notifications",
                   "set_community_notifications", "subscribe_push"}
FILE = "{file}"  # in `multipart:` or `content:`, the file's bytes
_FILE_TIMEOUT_S = 120.0  # an upload of a file may take longer than other requests
_PLACEHOLDER = placeholders.PATTERN
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_DOTTED = re.compile(r"\.|[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*")
WHOLE = "."  # a response path meaning the whole answer (a JSON list, say)


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    request: str  # "METHOD /path/{placeholder}?query={placeholder}"
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    multipart: dict[str, str] | None = None  # form fields; the one whose value is "{file}" is the file
    content: Literal["{file}"] | None = None  # the file's bytes as the whole body
    headers: dict[str, str] = Field(default_factory=dict)
    response: dict[str, str] = Field(default_factory=dict)  # msgops field <- dotted path in the answer
    items: dict[str, dict[str, str]] = Field(default_factory=dict)  # list field -> {item field <- dotted path}
    status: list[int] | None = None  # the statuses of success (default: any 2xx)

    @property
    def method(self) -> str:
        return self.request.split(" ", 1)[0].upper()

    @property
    def path(self) -> str:
        return self.request.split(" ", 1)[1].strip()

    def uses(self, value: str) -> bool:
        """Whether the request or its JSON body places `value`."""
        return value in placeholders.unknown([self.path, *placeholders.strings(self.json_body)], ())

    def json_key(self, value: str) -> str | None:
        """The top-level JSON field that carries `value` ("text" for the content), if any."""
        return next((k for k, v in (self.json_body or {}).items() if v == "{" + value + "}"), None)

    def check(self, name: str) -> None:
        method, _, path = self.request.strip().partition(" ")
        if method.upper() not in _METHODS or not path.strip().startswith("/"):
            raise ValueError(f"request {self.request!r}: expected \"METHOD /path\" (METHOD one of "
                             f"{', '.join(sorted(_METHODS))})")
        bodies = [b for b in (self.json_body, self.multipart, self.content) if b is not None]
        if len(bodies) > 1:
            raise ValueError("json, multipart and content are different bodies: give one")
        allowed = OPERATIONS[name]
        texts = [path, *placeholders.strings(self.json_body), *placeholders.strings(self.multipart),
                 *placeholders.strings(self.content), *self.headers.values()]
        for placeholder in placeholders.unknown(texts, allowed):
            raise ValueError(f"unknown placeholder {{{placeholder}}} (this operation has "
                             f"{placeholders.listed(allowed)})")
        returns = RETURNS.get(name, {})
        checked = name in RETURNS or name in _READS_NOTHING  # (operations declared elsewhere: paths only)
        for ours, theirs in self.response.items():
            _check_field(f"response.{ours}", ours, theirs, returns if checked else None)
        for ours, fields in self.items.items():
            item_fields = returns.get(ours)
            if checked and item_fields is None:
                lists = [f for f, v in returns.items() if v is not None]
                raise ValueError(f"items.{ours}: not a list this operation returns (it returns "
                                 f"{', '.join(lists) or 'no list'})")
            for field, theirs in fields.items():
                _check_field(f"items.{ours}.{field}", field, theirs,
                             dict.fromkeys(item_fields) if item_fields is not None else None)


def _check_field(where: str, ours: str, theirs: str, known: Mapping[str, Any] | None) -> None:
    if known is not None and ours not in known:
        raise ValueError(f"{where}: msgops reads no field {ours!r} here (known: {', '.join(known) or 'none'})")
    if not isinstance(theirs, str) or not _DOTTED.fullmatch(theirs):
        raise ValueError(f"{where}: {theirs!r} is not a dotted path like post.postId (or . for the whole answer)")


def _op(request: str, body: dict[str, Any] | None = None, response: dict[str, str] | None = None,
        status: tuple[int, ...] = ()) -> Operation:
    return Operation(request=request, json=body, response=response or {}, status=list(status) or None)


# The reference service's routes. Its answers carry msgops's field names, so only lists it returns bare
# (a JSON array) are mapped, with WHOLE; the statuses are its exact ones, which flows hold it to.
REFERENCE: dict[str, Operation] = {
    "create_direct": _op("POST /conversations", {"kind": "direct", "user_id": "{user_id}"}, {"id": "id"},
                         (201, 200)),
    "create_group": _op("POST /conversations", {"kind": "group", "title": "{title}", "member_ids": "{member_ids}"},
                        {"id": "id"}, (201,)),
    "add_member": _op("POST /conversations/{conversation_id}/members", {"user_id": "{user_id}"}),
    "remove_member": _op("DELETE /conversations/{conversation_id}/members/{user_id}"),
    "list_conversations": _op("GET /conversations?archived={archived}&cursor={cursor}&limit={limit}", None,
                              None, (200,)),
    "get_conversation": _op("GET /conversations/{conversation_id}", None, None, (200,)),
    "archive_conversation": _op("PATCH /conversations/{conversation_id}/archive", {"archived": "{archived}"},
                                None, (200,)),
    "send_message": _op("POST /conversations/{conversation_id}/messages",
                        {"content": "{content}", "client_msg_id": "{client_msg_id}", "parent_id": "{parent_id}"},
                        {"id": "id", "seq": "seq"}, (201,)),
    "list_messages": _op("GET /conversations/{conversation_id}/messages?limit={limit}&before={before}"
                         "&after={after}&since_seq={since_seq}", None, {"messages": "messages"}, (200,)),
    "get_message": _op("GET /messages/{message_id}", None, None, (200,)),
    "edit_message": _op("PATCH /messages/{message_id}", {"content": "{content}"}, None, (200,)),
    "delete_message": _op("DELETE /messages/{message_id}", None, None, (204,)),
    "search": _op("GET /conversations/{conversation_id}/messages/search?q={query}", None, {"results": "results"},
                  (200,)),
    "mark_read": _op("PATCH /messages/{message_id}/read", None, None, (200,)),
    "report": _op("POST /messages/{message_id}/report", {"reason": "{reason}"}, None, (201,)),
    "list_reports": _op("GET /moderation/reports?limit={limit}", None, {"reports": WHOLE}, (200,)),
    "moderator_delete_message": _op("POST /moderation/messages/{message_id}/delete", None, None, (200,)),
    "set_role": _op("PUT /admin/users/{user_id}/role", {"role": "{role}"}, None, (200,)),
    "broadcast": _op("POST /broadcasts", {"audience": "{audience}", "phase": "{phase}", "content": "{content}"},
                     None, (201,)),
    "list_broadcasts": _op("GET /broadcasts?phase={phase}&limit={limit}", None, {"broadcasts": WHOLE}, (200,)),
    "create_community": _op("POST /communities", {"name": "{name}", "description": "{description}",
                                                  "is_private": "{is_private}"}, None, (201,)),
    "list_communities": _op("GET /communities?q={query}", None, {"communities": WHOLE}, (200,)),
    "get_community": _op("GET /communities/{community_id}", None, None, (200,)),
    "join_community": _op("POST /communities/{community_id}/join", None, None, (201, 200)),
    "leave_community": _op("POST /communities/{community_id}/leave", None, None, (204, 200)),
    "list_community_members": _op("GET /communities/{community_id}/members", None, {"members": WHOLE}, (200,)),
    "send_community_message": _op("POST /communities/{community_id}/messages", {"content": "{content}"}, None,
                                  (201,)),
    "list_community_messages": _op("GET /communities/{community_id}/messages", None, None, (200,)),
}
# Attachments, notifications (of conversations and channels) and web push (http.attachments,
# http.notifications).
REFERENCE.update({
    "upload_attachment": Operation(
        request="POST /conversations/{conversation_id}/attachments?filename={filename}", content="{file}",
        headers={"Content-Type": "{content_type}"}),
    "attachment_url": _op("GET /attachments/{attachment_id}", None, None, (200,)),
    "attach_attachment": _op("POST /attachments/{attachment_id}/attach", {"message_id": "{message_id}"}),
    "delete_attachment": _op("DELETE /attachments/{attachment_id}", None, None, (204,)),
    "set_display_name": _op("PATCH /me", {"display_name": "{display_name}"}, None, (200,)),
    "list_notifications": _op("GET /notifications", None, None, (200,)),
    "set_room_notifications": _op("PUT /conversations/{conversation_id}/notifications",
                                  {"level": "{level}", "muted_until": "{muted_until}"}, None, (200,)),
    "set_community_notifications": _op("PUT /communities/{community_id}/notifications",
                                       {"level": "{level}", "muted_until": "{muted_until}"}, None, (200,)),
    "subscribe_push": _op("POST /push/subscriptions",
                          {"endpoint": "{endpoint}", "keys": {"p256dh": "{p256dh}", "auth": "{auth}"}}),
})


class ApiMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: Literal["reference", "none"] = "reference"
    derive: Literal["openapi"] | None = None  # read what it can from the target's /openapi.json
    operations: dict[str, Operation | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> ApiMap:
        for name, op in self.operations.items():
            if name not in OPERATIONS:
                raise ValueError(f"operations.{name}: unknown operation (known: {', '.join(OPERATIONS)})")
            if op is not None:
                try:
                    op.check(name)
                except ValueError as exc:
                    raise ValueError(f"operations.{name}: {exc}") from None
        return self

    def get(self, name: str, derived: Mapping[str, Operation] | None = None) -> Operation | None:
        """Named in `operations` (null: the target has none) > derived from OpenAPI > the defaults."""
        if name in self.operations:
            return self.operations[name]
        if derived and name in derived:
            return derived[name]
        return REFERENCE[name] if self.defaults == "reference" else None


def parse(raw: Mapping[str, Any] | None) -> ApiMap:
    """The validated `api:` section; UserError (exit 3) naming the mistake."""
    try:
        return ApiMap.model_validate(dict(raw or {}))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"] if p not in ("Operation",))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        raise UserError(f"msgops.yaml api{'.' + loc if loc else ''}: {message}; fix msgops.yaml") from None


def of(ctx: Context) -> ApiMap:
    cached = ctx.cache.get("api.map")
    if cached is None:
        cached = ctx.cache["api.map"] = parse(ctx.target.api)
    assert isinstance(cached, ApiMap)
    return cached


# --- calling an operation ---------------------------------------------------------------------------

def _fill_text(text: str, values: Mapping[str, Any], *, url: bool) -> str:
    def one(m: re.Match[str]) -> str:
        value = values.get(m.group(1), "")
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return quote(text, safe="") if url else text

    return _PLACEHOLDER.sub(one, text)


def _fill_path(template: str, values: Mapping[str, Any]) -> str:
    """The path with its placeholders filled (URL-quoted); a query pair whose placeholder has no value
    (None, or not given) is left out."""
    path, _, query = template.partition("?")
    pairs = [pair for pair in query.split("&") if pair and all(
        values.get(name) is not None for name in _PLACEHOLDER.findall(pair))]
    filled = _fill_text(path, values, url=True)
    return filled + ("?" + "&".join(_fill_text(p, values, url=True) for p in pairs) if pairs else "")


def _fill_json(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return values.get(whole.group(1))
        return _fill_text(value, values, url=False)
    if isinstance(value, dict):
        return {k: _fill_json(v, values) for k, v in value.items() if not (
            isinstance(v, str) and _PLACEHOLDER.fullmatch(v) and values.get(v[1:-1]) is None)}
    if isinstance(value, list):
        return [_fill_json(v, values) for v in value]
    return value


def dig(body: Any, path: str) -> Any:
    if path == WHOLE:
        return body
    for part in path.split("."):
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


class Fields(dict[str, Any]):
    """An answer's fields under msgops's names; reading one the answer lacks is CannotEvaluate naming
    the operation and the mapping that would supply it."""

    def __init__(self, name: str, request: str, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.name, self.request = name, request

    def __missing__(self, key: str) -> Any:
        from msgops.probes.context import CannotEvaluate

        raise CannotEvaluate(f"the answer to {self.name} ({self.request}) has no field {key!r}: the target does "
                             f"not return it, or msgops.yaml api.operations.{self.name}.response does not map it")


def read(op: Operation, data: Any) -> dict[str, Any]:
    """The answer's fields under msgops's names: its own top-level fields, then `response:` over them,
    then `items:` over each item of a list field; the whole JSON under "body"."""
    fields: dict[str, Any] = dict(data) if isinstance(data, dict) else {}
    fields["body"] = data
    for ours, theirs in op.response.items():
        fields[ours] = dig(data, theirs)
    for ours, mapping in op.items.items():
        if isinstance(fields.get(ours), list):
            fields[ours] = [{**item, **{k: dig(item, path) for k, path in mapping.items()}}
                            if isinstance(item, dict) else item for item in fields[ours]]
    return fields


@dataclass
class Answer:
    response: httpx.Response
    op: Operation
    fields: dict[str, Any]  # msgops's names, read through `response:` and `items:`; the whole JSON under "body"

    @property
    def ok(self) -> bool:
        return self.response.status_code in success(self.op)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


def success(op: Operation) -> tuple[int, ...]:
    """The statuses that mean the operation was done: the map's `status`, else any 2xx."""
    return tuple(op.status) if op.status else tuple(range(200, 300))


def _body(op: Operation, json_body: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """httpx's arguments for the operation's body: the file's bytes, a multipart form, or the JSON."""
    if op.content is not None:
        return {"content": values.get("file") or b"", "timeout": _FILE_TIMEOUT_S}
    if op.multipart is not None:
        file = (str(values.get("filename") or "file"), values.get("file") or b"",
                str(values.get("content_type") or "application/octet-stream"))
        return {"files": {k: file for k, v in op.multipart.items() if v == FILE},
                "data": {k: _fill_text(v, values, url=False) for k, v in op.multipart.items() if v != FILE},
                "timeout": _FILE_TIMEOUT_S}
    return {"json": json_body}


async def lookup(ctx: Context, name: str) -> Operation | None:
    api = of(ctx)
    derived: Mapping[str, Operation] | None = None
    if api.derive == "openapi" and name not in api.operations:
        from msgops.apimap_openapi import derive
        from msgops.probes.http.common import openapi, shared

        async def derived_map() -> dict[str, Operation]:
            return derive(await openapi(ctx))

        derived = await shared(ctx, "api.derived", derived_map)
    return api.get(name, derived)


async def need(ctx: Context, name: str, *values: str) -> Operation:
    """Operation `name`, placing each of `values`; Skip ("not part of this API") when the map lacks
    the operation, or the operation lacks a value the caller's question depends on."""
    from msgops.probes.context import Skip

    op = await lookup(ctx, name)
    if op is None:
        raise Skip(f"not part of this API: operation {name} is not in msgops.yaml api.operations")
    for value in values:
        if not op.uses(value):
            raise Skip(f"not part of this API: operation {name} in msgops.yaml api.operations has no "
                       f"{{{value}}} placeholder")
    return op


async def call(ctx: Context, user: ProbeUser | None, name: str, /, *, needs: tuple[str, ...] = (),
               method: str | None = None, body: Any = None, extra: Mapping[str, Any] | None = None,
               raw: bytes | None = None, headers: Mapping[str, str] | None = None, **values: Any) -> Answer:
    """Call operation `name` as `user` with `values` in its placeholders; Skip when the target's API has
    no such operation (or it places none of `needs`). For probes that send what a client must not:
    `body` replaces the mapped JSON, `extra` adds fields to it, `raw` sends bytes instead, `method` is
    another method on the operation's path."""
    from msgops.probes.http.common import json_of

    op = await need(ctx, name, *needs)
    path = _fill_path(op.path, values)
    json_body = body if body is not None else _fill_json(op.json_body, values) if op.json_body is not None else None
    if extra:
        json_body = {**(json_body if isinstance(json_body, dict) else {}), **extra}
    sent = {k: _fill_text(v, values, url=False) for k, v in op.headers.items()}
    sent.update(headers or {})
    if user is not None:
        sent.update(user.headers)
    if raw is not None:
        r = await ctx.http.request(method or op.method, path, content=raw, headers=sent)
    else:
        r = await ctx.http.request(method or op.method, path, headers=sent, **_body(op, json_body, values))
    return Answer(r, op, Fields(name, f"{r.request.method} {r.request.url.path} answered {r.status_code}",
                                read(op, json_of(r))))

