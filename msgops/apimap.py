"""The API map: how the operations probes use are called on this target (msgops.yaml `api:`).

    api:
      defaults: none                  # reference (default): unlisted operations use the reference's routes
      operations:
        create_group:
          request: "POST /api/rooms"
          json: {name: "{title}", members: "{member_ids}"}
          response: {id: room.roomId}            # msgops's field <- a dotted path in the target's JSON
        send_message:
          request: "POST /api/rooms/{conversation_id}/posts"
          json: {text: "{content}", nonce: "{client_msg_id}"}
          response: {id: post.postId, seq: post.seq}
        report: null                   # the target has no such operation: its checks are skipped
        upload_attachment:
          request: "POST /api/rooms/{conversation_id}/files"
          multipart: {blob: "{file}", room: "{conversation_id}"}   # "{file}": the file part
          response: {id: file.fileId}

A JSON value that is exactly one placeholder ("{member_ids}") takes the value as it is (a list, a
number); placeholders inside longer strings are replaced by text. A file goes up as a multipart form
(`multipart:`, the field whose value is "{file}" is the file, named {filename}, of type {content_type}) or
as the whole body (`content: "{file}"`, with `headers: {Content-Type: "{content_type}"}`). An operation
the map does not have makes the probe that needs it `skip` "not part of this API".
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
    "create_direct": frozenset({"user_id"}),
    "create_group": frozenset({"title", "member_ids"}),
    "add_member": frozenset({"conversation_id", "user_id"}),
    "remove_member": frozenset({"conversation_id", "user_id"}),
    "send_message": frozenset({"conversation_id", "content", "client_msg_id"}),
    "list_messages": frozenset({"conversation_id", "limit"}),
    "edit_message": frozenset({"conversation_id", "message_id", "content"}),
    "delete_message": frozenset({"conversation_id", "message_id"}),
    "search": frozenset({"conversation_id", "query"}),
    "mark_read": frozenset({"conversation_id", "message_id", "seq"}),
    "report": frozenset({"conversation_id", "message_id", "reason"}),
}
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
    "subscribe_push": frozenset({"endpoint", "p256dh", "auth"}),
    "create_community": frozenset({"title"}),
    "join_community": frozenset({"community_id"}),
    "send_community_message": frozenset({"community_id", "content"}),
    "set_community_notifications": frozenset({"community_id", "level", "muted_until"}),
})
FILE = "{file}"  # in `multipart:` or `content:`, the file's bytes
_FILE_TIMEOUT_S = 120.0  # an upload of a file may take longer than other requests
_PLACEHOLDER = placeholders.PATTERN
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    request: str  # "METHOD /path/{placeholder}?query={placeholder}"
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    multipart: dict[str, str] | None = None  # form fields; the one whose value is "{file}" is the file
    content: Literal["{file}"] | None = None  # the file's bytes as the whole body
    headers: dict[str, str] = Field(default_factory=dict)
    response: dict[str, str] = Field(default_factory=dict)  # msgops field <- dotted path in the answer
    status: list[int] | None = None  # accepted statuses (default: any 2xx)

    @property
    def method(self) -> str:
        return self.request.split(" ", 1)[0].upper()

    @property
    def path(self) -> str:
        return self.request.split(" ", 1)[1].strip()

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


def _op(request: str, body: dict[str, Any] | None = None, response: dict[str, str] | None = None) -> Operation:
    return Operation(request=request, json=body, response=response or {})


REFERENCE: dict[str, Operation] = {
    "create_direct": _op("POST /conversations", {"kind": "direct", "user_id": "{user_id}"}, {"id": "id"}),
    "create_group": _op("POST /conversations", {"kind": "group", "title": "{title}", "member_ids": "{member_ids}"},
                        {"id": "id"}),
    "add_member": _op("POST /conversations/{conversation_id}/members", {"user_id": "{user_id}"}),
    "remove_member": _op("DELETE /conversations/{conversation_id}/members/{user_id}"),
    "send_message": _op("POST /conversations/{conversation_id}/messages",
                        {"content": "{content}", "client_msg_id": "{client_msg_id}"}, {"id": "id", "seq": "seq"}),
    "list_messages": _op("GET /conversations/{conversation_id}/messages?limit={limit}", None,
                         {"messages": "messages"}),
    "edit_message": _op("PATCH /messages/{message_id}", {"content": "{content}"}),
    "delete_message": _op("DELETE /messages/{message_id}"),
    "search": _op("GET /conversations/{conversation_id}/messages/search?q={query}", None, {"results": "results"}),
    "mark_read": _op("PATCH /messages/{message_id}/read"),
    "report": _op("POST /messages/{message_id}/report", {"reason": "{reason}"}),
}
# Attachments, notifications (of conversations and channels) and web push (http.attachments,
# http.notifications).
REFERENCE.update({
    "upload_attachment": Operation(
        request="POST /conversations/{conversation_id}/attachments?filename={filename}", content="{file}",
        headers={"Content-Type": "{content_type}"},
        response={"id": "id", "kind": "kind", "duration_ms": "duration_ms"}),
    "attachment_url": _op("GET /attachments/{attachment_id}", None,
                          {"url": "url", "url_expires_at": "url_expires_at", "thumbnail_url": "thumbnail_url",
                           "width": "width"}),
    "attach_attachment": _op("POST /attachments/{attachment_id}/attach", {"message_id": "{message_id}"}),
    "delete_attachment": _op("DELETE /attachments/{attachment_id}"),
    "set_display_name": _op("PATCH /me", {"display_name": "{display_name}"}),
    "list_notifications": _op("GET /notifications", None, {"items": "items"}),
    "set_room_notifications": _op("PUT /conversations/{conversation_id}/notifications",
                                  {"level": "{level}", "muted_until": "{muted_until}"}),
    "subscribe_push": _op("POST /push/subscriptions",
                          {"endpoint": "{endpoint}", "keys": {"p256dh": "{p256dh}", "auth": "{auth}"}}),
    "create_community": _op("POST /communities", {"name": "{title}"}, {"id": "id"}),
    "join_community": _op("POST /communities/{community_id}/join"),
    "send_community_message": _op("POST /communities/{community_id}/messages", {"content": "{content}"},
                                  {"id": "id", "seq": "seq"}),
    "set_community_notifications": _op("PUT /communities/{community_id}/notifications",
                                       {"level": "{level}", "muted_until": "{muted_until}"}),
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
        return quote(str(value), safe="") if url else str(value)

    return _PLACEHOLDER.sub(one, text)


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
    for part in path.split("."):
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


@dataclass
class Answer:
    response: httpx.Response
    op: Operation
    fields: dict[str, Any]  # msgops's names, read through `response:`; the whole JSON under "body"

    @property
    def ok(self) -> bool:
        codes = self.op.status
        return self.response.status_code in codes if codes else 200 <= self.response.status_code < 300

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


def _body(op: Operation, values: Mapping[str, Any]) -> dict[str, Any]:
    """httpx's arguments for the operation's body: json, a multipart form (files + data), or content."""
    if op.json_body is not None:
        return {"json": _fill_json(op.json_body, values)}
    if op.content is not None:
        return {"content": values.get("file") or b"", "timeout": _FILE_TIMEOUT_S}
    if op.multipart is not None:
        file = (str(values.get("filename") or "file"), values.get("file") or b"",
                str(values.get("content_type") or "application/octet-stream"))
        return {"files": {k: file for k, v in op.multipart.items() if v == FILE},
                "data": {k: _fill_text(v, values, url=False) for k, v in op.multipart.items() if v != FILE},
                "timeout": _FILE_TIMEOUT_S}
    return {}


async def lookup(ctx: Context, name: str) -> Operation | None:
    api = of(ctx)
    derived: Mapping[str, Operation] | None = None
    if api.derive == "openapi" and name not in api.operations:
        from msgops.apimap_openapi import derive
        from msgops.probes.http.common import openapi, shared

        async def read() -> dict[str, Operation]:
            return derive(await openapi(ctx))

        derived = await shared(ctx, "api.derived", read)
    return api.get(name, derived)


async def get_path(ctx: Context, name: str, values: Mapping[str, Any]) -> str | None:
    """The filled path of operation `name` when the map has it as a GET; else None."""
    op = await lookup(ctx, name)
    if op is None or op.method != "GET":
        return None
    return _fill_text(op.path, values, url=True)


async def call(ctx: Context, user: ProbeUser | None, name: str, **values: Any) -> Answer:
    """Call operation `name` as `user`; Skip when the target's API has no such operation."""
    from msgops.probes.context import Skip
    from msgops.probes.http.common import json_of

    op = await lookup(ctx, name)
    if op is None:
        raise Skip(f"not part of this API: the operation {name} is not in msgops.yaml api.operations")
    path = _fill_text(op.path, values, url=True)
    headers = {k: _fill_text(v, values, url=False) for k, v in op.headers.items()}
    if user is not None:
        headers.update(user.headers)
    r = await ctx.http.request(op.method, path, headers=headers, **_body(op, values))
    data = json_of(r)
    fields: dict[str, Any] = dict(data) if isinstance(data, dict) else {}
    fields["body"] = data
    for ours, theirs in op.response.items():
        fields[ours] = dig(data, theirs)
    return Answer(r, op, fields)
