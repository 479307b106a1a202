"""Secret patterns for scanning text (git history): one named regex each, plus the judgement that
tells a real credential from a placeholder.

Ignored on purpose: JWTs whose role is not service_role (anon keys are public by design), AWS's
documented example keys, passwords and generic values that are template placeholders or test data
(`password`, `changeme`, `your-...`, `${VAR}`, values containing test/example/dummy/fake/sample),
PostgreSQL URLs whose host is loopback (a development database: its password guards nothing
reachable), and any line carrying the pragma `msgops:allow-secret`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from msgops.probes.env.keys import jwt_part
from msgops.probes.env.urls import is_loopback

PRAGMA = "msgops:allow-secret"
_STOPWORDS = ("test", "example", "dummy", "fake", "sample", "placeholder", "changeme", "change_me", "change-me",
              "your", "xxxx", "redacted", "dev-secret", "insecure", "localdev")
_PLACEHOLDER_PASSWORDS = frozenset({"password", "pass", "passwd", "postgres", "secret", "root", "admin", "user",
                                    "pwd", "changeme", "example", "test", "*", "**", "***", "****"})


@dataclass(frozen=True)
class Match:
    pattern: str
    masked: str


def mask(value: str) -> str:
    return value[:8] + "…"


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _placeholder(value: str) -> bool:
    low = value.lower()
    return (any(w in low for w in _STOPWORDS) or value.startswith(("$", "<", "{", "%"))
            or len(set(value)) <= 3)


def _private_key(m: re.Match[str]) -> str | None:
    # "-----BEGIN PRIVATE KEY-----..." is how docs and error messages show the shape of a key, not a key
    after = m.string[m.end():m.end() + 3]
    return None if after.startswith(("...", "…")) else m.group(0)


def _aws_key(m: re.Match[str]) -> str | None:
    return None if m.group(0).endswith("EXAMPLE") else mask(m.group(0))


def _service_role_jwt(m: re.Match[str]) -> str | None:
    try:
        claims = jwt_part(m.group(0).split(".")[1])
    except ValueError:
        return None
    return mask(m.group(0)) + " (role service_role)" if claims.get("role") == "service_role" else None


def _postgres_password(m: re.Match[str]) -> str | None:
    scheme, user, password, host = m.group(1), m.group(2), m.group(3), m.group(4)
    if password.lower() in _PLACEHOLDER_PASSWORDS or _placeholder(password) or is_loopback(host):
        return None
    return f"{scheme}://{user}:****@{host}"


def _token(m: re.Match[str]) -> str | None:
    return mask(m.group(0))


def _assignment(m: re.Match[str]) -> str | None:
    name, value = m.group(1), m.group(2)
    has_digit, has_alpha = any(c.isdigit() for c in value), any(c.isalpha() for c in value)
    if value.startswith("eyJ"):  # a JWT: judged by its role claim, above
        return None
    if _placeholder(value) or not (has_digit and has_alpha) or entropy(value) < 3.5:
        return None
    return f"{name}={mask(value)}"


_RULES: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str | None]]] = [
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"), _private_key),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), _aws_key),
    ("service_role_jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
     _service_role_jwt),
    ("postgres_url_password",
     re.compile(r"\b(postgres(?:ql)?)://([^:/\s@'\"]+):([^@\s/'\"]+)@([^/\s:?'\"]+)"), _postgres_password),
    ("slack_token", re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"), _token),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{8,}"),
     _token),
    ("secret_assignment",
     re.compile(r"\b([A-Za-z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY)"
                r"[A-Za-z0-9_]*)['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9+/=_\-.~]{16,})", re.IGNORECASE), _assignment),
]
PATTERN_NAMES = tuple(name for name, _, _ in _RULES)


def scan_line(line: str) -> Iterator[Match]:
    """Every credential-looking match in one line of text."""
    if PRAGMA in line:
        return
    taken: list[tuple[int, int]] = []  # one finding per stretch of text: the most specific rule wins
    for name, regex, judge in _RULES:
        for m in regex.finditer(line):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            masked = judge(m)
            if masked is not None:
                taken.append(m.span())
                yield Match(name, masked)
