"""An API map derived from a target's OpenAPI document (msgops.yaml `api: {derive: openapi}`).

Each operation msgops uses is looked up by operationId (or a tag plus the method), compared word by
word with the names teams give it (`createRoom`, `send_message`, `postMessage`, ...); its path
parameters and JSON fields are matched to msgops's by name (`roomId` is the conversation, `text` the
content). What cannot be matched stays out of the map: its checks are skipped, and `api.operations`
can still name it.
"""

from __future__ import annotations

import re
from typing import Any

from msgops.apimap import OPERATIONS, Operation

_VERBS = {"create": "create", "new": "create", "start": "create", "open": "create", "add": "add", "invite": "add",
          "remove": "remove", "kick": "remove", "send": "send", "post": "send", "list": "list", "get": "list",
          "fetch": "list", "show": "list",
          "edit": "edit", "update": "edit", "delete": "delete", "search": "search", "mark": "mark", "read": "mark",
          "report": "report", "flag": "report"}
_NOUNS = {"conversation": "room", "room": "room", "channel": "room", "group": "room", "chat": "room",
          "conversations": "room", "rooms": "room", "channels": "room", "chats": "room",
          "direct": "direct", "dm": "direct", "member": "member", "participant": "member", "person": "member",
          "people": "member", "user": "member", "message": "message", "messages": "message", "post": "message",
          "posts": "message"}
# msgops operation -> (verb, noun) in the words above
_WANTED = {"create_group": ("create", "room"), "create_direct": ("create", "direct"), "add_member": ("add", "member"),
           "remove_member": ("remove", "member"), "send_message": ("send", "message"),
           "list_messages": ("list", "message"), "get_message": ("get", "message"),
           "list_conversations": ("list", "room"), "get_conversation": ("get", "room"),
           "edit_message": ("edit", "message"),
           "delete_message": ("delete", "message"), "search": ("search", "message"), "mark_read": ("mark", "message"),
           "report": ("report", "message")}
_FIELDS = {"content": ("content", "text", "body", "message"), "title": ("title", "name", "subject"),
           "member_ids": ("member_ids", "members", "participants", "user_ids", "people"),
           "user_id": ("user_id", "userid", "member_id", "memberid", "participant_id"),
           "client_msg_id": ("client_msg_id", "nonce", "client_id", "clientid", "idempotency_key"),
           "reason": ("reason",), "seq": ("seq", "sequence"), "query": ("q", "query", "term"),
           "limit": ("limit", "page_size"), "before": ("before", "before_seq"), "after": ("after", "after_seq"),
           "since_seq": ("since_seq", "since"), "cursor": ("cursor",), "archived": ("archived",)}
_PARAM = re.compile(r"\{([^}/]+)\}")


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def _norm(name: str) -> str:
    return "".join(_words(name)).replace("_", "")


def _meaning(words: list[str]) -> tuple[str | None, str | None]:
    verb = next((_VERBS[w] for w in words if w in _VERBS), None)
    nouns = [_NOUNS[w] for w in words if w in _NOUNS]
    noun = "direct" if "direct" in nouns else "member" if "member" in nouns and verb in ("add", "remove") \
        else "message" if "message" in nouns else nouns[0] if nouns else None
    return verb, noun


def _field(name: str) -> str | None:
    key = _norm(name)
    return next((ours for ours, names in _FIELDS.items() if key in {_norm(n) for n in names}), None)


def _param(name: str) -> str:
    words = _words(name)
    if any(w in ("message", "post") for w in words):
        return "message_id"
    if any(w in ("user", "member", "person", "participant") for w in words):
        return "user_id"
    return "conversation_id"


def _resolve(doc: dict[str, Any], schema: Any) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = doc
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node
    return schema if isinstance(schema, dict) else {}


def _body(doc: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    content = (spec.get("requestBody") or {}).get("content", {}).get("application/json")
    if not content:
        return None
    props = _resolve(doc, content.get("schema")).get("properties", {})
    return {name: "{" + ours + "}" for name in props if (ours := _field(name)) is not None}


def _id_path(doc: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
    for code in ("201", "200"):
        content = (spec.get("responses", {}).get(code) or {}).get("content", {}).get("application/json")
        schema = _resolve(doc, (content or {}).get("schema"))
        props = schema.get("properties", {})
        for name in props:
            if _norm(name) == "id":
                return {"id": name}
        for outer, inner in props.items():
            for name in _resolve(doc, inner).get("properties", {}):
                if _norm(name) == "id" or (_norm(name).endswith("id") and _norm(name)[:-2] in _norm(outer)):
                    return {"id": f"{outer}.{name}"}
    return {}


def derive(doc: dict[str, Any]) -> dict[str, Operation]:
    """The operations the document reveals, by operationId (or tags), as API map entries."""
    found: dict[str, Operation] = {}
    for path, item in (doc.get("paths") or {}).items():
        for method, spec in (item or {}).items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or not isinstance(spec, dict):
                continue
            words = _words(str(spec.get("operationId") or "")) + [w for t in spec.get("tags", []) for w in _words(t)]
            verb, noun = _meaning(words)
            if verb == "send" and method.upper() == "GET":
                verb = "list"
            if verb == "list" and path.rstrip("/").endswith("}"):  # one of them, by its id
                verb = "get"
            name = next((op for op, want in _WANTED.items() if want == (verb, noun)), None)
            if name is None or name in found:
                continue
            filled = _PARAM.sub(lambda m: "{" + _param(m.group(1)) + "}", path)
            params = {p.get("name"): p for p in spec.get("parameters", []) if p.get("in") == "query"}
            query = [f"{n}={{{ours}}}" for n in params if (ours := _field(str(n))) in OPERATIONS[name]]
            request = f"{method.upper()} {filled}" + ("?" + "&".join(query) if query else "")
            body = _body(doc, spec)
            op = Operation(request=request, json=body, response=_id_path(doc, spec))
            try:
                op.check(name)
            except ValueError:
                continue
            found[name] = op
    return found
