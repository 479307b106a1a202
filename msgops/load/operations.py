"""The workload's requests, built from the target's API map (msgops.yaml `api:`; the reference's by default).

Each thing the workload does (send, list conversations, page history, search, ...) is one operation of
the map, bound once to the values the workload passes: the path becomes a `str.format` template holding
only the query pairs those values fill, the JSON body a tree of small builders. A request then costs a
`format_map` and a dict or two, as a hand-written f-string did: no validation or regex work per request.
Its Locust name is the path with each placeholder shown as {id}, under its method (the results' endpoint
"POST /conversations/{id}/messages"), so statistics group by endpoint and read the same as the map.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from msgops import placeholders
from msgops.errors import EXIT_BAD_INPUT, UserError

if TYPE_CHECKING:  # the Locust processes only replay Prepared requests: neither the map nor the profile model
    from msgops.apimap import ApiMap, Operation
    from msgops.load.profile import Profile

# workload action -> (operation, the values the workload passes to it)
ACTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "send": ("send_message", frozenset({"conversation_id", "content", "client_msg_id"})),
    "conversations": ("list_conversations", frozenset({"limit"})),
    "history": ("list_messages", frozenset({"conversation_id", "limit"})),
    "search": ("search", frozenset({"conversation_id", "query"})),
    "communities": ("list_community_messages", frozenset({"community_id", "limit"})),
    "broadcast": ("broadcast", frozenset({"audience", "phase", "content"})),
    "upload": ("upload_attachment", frozenset({"conversation_id", "filename", "content_type"})),
}
# values an action cannot do without: a send whose content is not sent cannot be timed to its receivers
_ESSENTIAL: dict[str, tuple[str, ...]] = {
    "send": ("conversation_id", "content"), "history": ("conversation_id",), "search": ("conversation_id",),
    "communities": ("community_id",), "upload": ("conversation_id",),
}
_PATTERN = placeholders.PATTERN
_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")  # a format field of a template


def _format_template(text: str) -> str:
    """`text` with its {placeholders} as str.format fields and every other brace escaped."""
    out, last = [], 0
    for m in _PATTERN.finditer(text):
        out.append(text[last:m.start()].replace("{", "{{").replace("}", "}}"))
        out.append("{" + m.group(1) + "}")
        last = m.end()
    out.append(text[last:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def _path_template(path: str, provided: frozenset[str]) -> str:
    """The path as a format template, with only the query pairs whose placeholders are all provided."""
    base, _, query = path.partition("?")
    pairs = [p for p in query.split("&") if p and all(n in provided for n in _PATTERN.findall(p))]
    return _format_template(base) + ("?" + "&".join(_format_template(p) for p in pairs) if pairs else "")


@lru_cache(maxsize=1 << 16)
def _quoted(text: str) -> str:
    """A path or query value, URL-quoted; the same ids and words come back request after request."""
    return quote(text, safe="")


_DROP = object()
Builder = Callable[[Mapping[str, Any]], Any]


def _builder(template: Any, provided: frozenset[str]) -> Builder | object:
    """A function of the values that builds `template`; _DROP for a lone placeholder not provided
    (its field is left out, as the checks' calls leave out a value they do not pass)."""
    if isinstance(template, str):
        whole = _PATTERN.fullmatch(template)
        if whole:
            name = whole.group(1)
            return (lambda v: v[name]) if name in provided else _DROP
        if _PATTERN.search(template):
            fmt = _format_template(template)
            return lambda v: fmt.format_map(v)
        return lambda v: template
    if isinstance(template, dict):
        items = [(k, b) for k, b in ((k, _builder(t, provided)) for k, t in template.items()) if b is not _DROP]
        return lambda v: {k: b(v) for k, b in items}  # type: ignore[operator]
    if isinstance(template, list):
        parts = [b for b in (_builder(t, provided) for t in template) if b is not _DROP]
        return lambda v: [b(v) for b in parts]  # type: ignore[operator]
    return lambda v: template


@dataclass
class Prepared:
    """One operation bound to the values the workload passes; plain data, so the plan can carry it."""

    operation: str
    method: str
    path: str                      # str.format template
    name: str                      # Locust's request name: the path with each placeholder as {id}
    provided: list[str]
    body: Any = None               # the JSON template, or None
    file_body: bool = False        # the body is the file's bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: list[int] = field(default_factory=list)  # the statuses of success; empty: any 2xx
    _build: Any = field(default=None, init=False, repr=False, compare=False)
    _in_path: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        built = _builder(self.body, frozenset(self.provided)) if self.body is not None else None
        self._build = None if built is _DROP else built
        self._in_path = tuple(dict.fromkeys(_FIELD.findall(self.path)))

    def url(self, values: Mapping[str, Any]) -> str:
        return self.path.format_map({n: _quoted(str(values.get(n, ""))) for n in self._in_path})

    def json(self, values: Mapping[str, Any]) -> Any:
        return self._build(values) if self._build is not None else None

    @property
    def endpoint(self) -> str:
        """How results name it: "POST /conversations/{id}/messages"."""
        return f"{self.method} {self.name}"

    def accepted(self, status: int) -> bool:
        return status in self.status if self.status else 200 <= status < 300

    def header_values(self, values: Mapping[str, Any]) -> dict[str, str]:
        return {k: _format_template(v).format_map(values) for k, v in self.headers.items()}

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prepared:
        return cls(**{k: v for k, v in data.items()})


def prepare(name: str, op: Operation, provided: frozenset[str]) -> Prepared:
    from msgops.apimap import FILE

    path = op.path
    label = _PATTERN.sub("{id}", path.partition("?")[0])
    return Prepared(operation=name, method=op.method, path=_path_template(path, provided),
                    name=label, provided=sorted(provided), body=op.json_body,
                    file_body=op.content == FILE, headers=dict(op.headers), status=list(op.status or []))


def missing(operation: str, why: str) -> UserError:
    return UserError(f"msgops load: {why} needs operation {operation}, which this target's API map lacks: "
                     f"add api.operations.{operation} to msgops.yaml (see docs/api-map.md)", EXIT_BAD_INPUT)


def workload(profile: Profile) -> list[str]:
    """The actions this profile's users and open-model streams perform."""
    users, mix = profile.users, profile.reader_mix
    actions = []
    if users.sender or profile.open.messages:
        actions.append("send")
    if users.reader:
        # a reader without a conversation lists conversations whatever the mix says
        actions += ["conversations", *(a for a in ("history", "search") if getattr(mix, a) and a not in actions)]
        if mix.communities and profile.provision.communities:
            actions.append("communities")
    if users.broadcaster or profile.open.broadcasts:
        actions.append("broadcast")
    if users.uploader:
        actions.append("upload")
    return actions


def bind(api: ApiMap, actions: list[str]) -> dict[str, Prepared]:
    """The workload's actions as prepared requests; UserError (exit 3) naming the first operation the map
    lacks or cannot serve."""
    from msgops.apimap import FILE

    prepared: dict[str, Prepared] = {}
    for action in actions:
        operation, values = ACTIONS[action]
        op = api.get(operation)
        if op is None:
            raise missing(operation, f"this profile's {action}")
        for value in _ESSENTIAL.get(action, ()):
            if not op.uses(value):
                raise UserError(f"msgops load: operation {operation} in msgops.yaml api.operations has no "
                                f"{{{value}}} placeholder, which the load workload needs", EXIT_BAD_INPUT)
        if op.multipart is not None or (action == "upload" and op.content != FILE):
            raise UserError(f"msgops load: operation {operation} must send the file as the whole body "
                            "(content: \"{file}\") for load runs; multipart forms are not supported",
                            EXIT_BAD_INPUT)
        prepared[action] = prepare(operation, op, values)
    return prepared
