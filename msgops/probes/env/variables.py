"""env.vars, env.url, env.tls_urls, env.log_level: configuration read from the target's environment.

Evidence names variables and where their value came from, never the values themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from msgops.probes import Name, Names, probe
from msgops.probes.context import Context, NotRun, Skip
from msgops.probes.env import urls
from msgops.probes.env.values import is_placeholder, lookup, not_configured, unused_vendor
from msgops.results import Outcome, failed, passed

_TLS_SCHEMES = {"http": "https", "ws": "wss", "redis": "rediss", "amqp": "amqps", "mqtt": "mqtts", "ftp": "ftps"}
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

VarNames = Annotated[list[Name | Names], Field(min_length=1)]
"""Variable names; an inner list names alternatives (one of them must be set)."""


def _alternatives(entry: str | list[str]) -> list[str]:
    return [entry] if isinstance(entry, str) else list(entry)


@probe(
    "env.vars",
    what="Each listed environment variable (or one of each group of alternatives) is set and not empty.",
    why="A missing variable surfaces as a crash or, worse, a silent fallback (no error tracking, wrong "
        "database) only after the deploy.",
    example="`vars: [DATABASE_URL, [SUPABASE_SERVICE_ROLE_KEY, SUPABASE_KEY]]` with SUPABASE_URL set but no "
            "key fails, listing SUPABASE_SERVICE_ROLE_KEY | SUPABASE_KEY as missing.",
    fix="Set the variables in the deployment's secret store (or the env_file named in msgops.yaml). Variables "
        "of a vendor the target does not use at all are skipped as not configured.",
)
async def env_vars(ctx: Context, vars: VarNames) -> Outcome:
    present: list[dict[str, str]] = []
    missing: list[str] = []
    placeholders: list[str] = []
    skipped: list[str] = []
    for entry in vars:
        names = _alternatives(entry)
        found = next((v for n in names if (v := lookup(ctx, n))), None)
        if found and is_placeholder(found.value):
            placeholders.append(found.name)
        elif found:
            present.append({"name": found.name, "source": found.source})
        elif vendor := unused_vendor(ctx, names):
            skipped.append(not_configured(names, vendor))
        else:
            missing.append(" | ".join(names))
    evidence: dict[str, Any] = {"present": present, "missing": missing, "placeholder_values": placeholders,
                                "not_configured": skipped}
    if missing or placeholders:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"template placeholder in {', '.join(placeholders)}"] if placeholders else []
        return failed("; ".join(problems), **evidence)
    if not present:
        raise Skip("; ".join(skipped))
    note = f" ({len(skipped)} not configured for this target)" if skipped else ""
    return passed(f"set: {', '.join(p['name'] for p in present)}{note}", **evidence)


@probe(
    "env.url",
    what="The variable holds a well-formed URL (scheme and host; the expected scheme when `schemes` is given).",
    why="A typo in a URL (missing scheme, stray space, http instead of https) breaks the deploy at first use.",
    example="`SUPABASE_URL=supabase.co/project` fails: it has no scheme.",
    fix="Set the full URL, e.g. https://<project>.supabase.co or postgresql://user@host:5432/db?sslmode=require.",
)
async def env_url(ctx: Context, var: Name, schemes: Names | None = None) -> Outcome:
    found = lookup(ctx, var)
    if found is None:
        if vendor := unused_vendor(ctx, [var]):
            raise Skip(not_configured([var], vendor))
        return failed(f"{var} is not set", var=var)
    wanted = [s.lower() for s in schemes or []]
    postgres = bool(set(wanted) & urls.POSTGRES_SCHEMES)
    try:
        location = urls.parse(found.value, allow_conninfo=postgres)
    except ValueError as exc:
        return failed(f"{var} {exc}", var=var, source=found.source)
    evidence: dict[str, Any] = {"var": var, "source": found.source, **location.describe()}
    accepted = wanted + (["postgresql"] if postgres else [])
    if wanted and location.scheme not in accepted:
        return failed(f"{var} uses {location.scheme}://, expected {' or '.join(wanted)}", expected=wanted,
                      **evidence)
    return passed(f"{var} is a well-formed {location.scheme} URL ({location.host})", **evidence)


def _tls_problem(location: urls.Location) -> str | None:
    if location.scheme in _TLS_SCHEMES:
        return f"{location.scheme}:// is plaintext (use {_TLS_SCHEMES[location.scheme]}://)"
    if location.scheme in urls.POSTGRES_SCHEMES and location.params.get("sslmode") not in urls.TLS_SSLMODES:
        mode = location.params.get("sslmode", "unset (libpq falls back to plaintext)")
        return f"sslmode is {mode}; use sslmode=require or verify-full"
    return None


@probe(
    "env.tls_urls",
    what="In staging and production, URL variables use TLS: https, wss, rediss, PostgreSQL with sslmode=require.",
    why="Plaintext links carry tokens, passwords and messages readable by anyone on the path.",
    example="`MSGOPS_API_URL=http://api.example.com` in production fails.",
    fix="Switch the URL to its TLS scheme; for PostgreSQL append ?sslmode=require (or verify-full with a CA).",
)
async def env_tls_urls(ctx: Context, vars: VarNames) -> Outcome:
    environment = ctx.target.environment.lower()
    if environment not in ("staging", "production"):
        raise Skip(f"TLS is required in staging and production; this target's environment is {environment!r} "
                   "(set `environment:` in msgops.yaml or MSGOPS_ENV)")
    checked: list[dict[str, Any]] = []
    problems: list[str] = []
    unset: list[str] = []
    for entry in vars:
        names = _alternatives(entry)
        found = next((v for n in names if (v := lookup(ctx, n))), None)
        if found is None:
            unset.append(" | ".join(names))
            continue
        try:
            location = urls.parse(found.value, allow_conninfo=True)
        except ValueError as exc:
            problems.append(f"{found.name} {exc}")
            checked.append({"var": found.name, "problem": str(exc)})
            continue
        row: dict[str, Any] = {"var": found.name, "source": found.source, **location.describe()}
        if urls.is_loopback(location.host):
            row["note"] = "loopback host: traffic never leaves the machine"
        elif problem := _tls_problem(location):
            row["problem"] = problem
            problems.append(f"{found.name}: {problem}")
        checked.append(row)
    evidence = {"environment": environment, "checked": checked, "unset": unset}
    if problems:
        return failed("; ".join(problems), **evidence)
    if not checked:
        raise Skip(f"none of {', '.join(unset)} is set")
    remote = [r["var"] for r in checked if "note" not in r]
    if not remote:
        return passed("only loopback URLs: nothing travels over a network", **evidence)
    return passed(f"TLS on {', '.join(remote)}", **evidence)


async def _health_level(ctx: Context) -> str | None:
    if not ctx.target.api_url:
        return None
    response = await ctx.http.get("/health")
    if response.status_code not in (200, 503):
        return None
    level = response.json().get("log_level") if "json" in response.headers.get("content-type", "") else None
    return str(level) if level else None


@probe(
    "env.log_level",
    what="The log level is the expected one (default INFO): MSGOPS_LOG_LEVEL or LOG_LEVEL, else /health's log_level.",
    why="DEBUG in production logs payloads and floods storage; WARNING hides the request trail an incident needs.",
    example="MSGOPS_LOG_LEVEL=DEBUG with expected INFO fails.",
    fix="Set MSGOPS_LOG_LEVEL=INFO (or the level your runbook names) and restart the service.",
)
async def env_log_level(ctx: Context, expected: Name = "INFO") -> Outcome:
    want = expected.strip().upper()
    source, level = None, None
    for name in ("MSGOPS_LOG_LEVEL", "LOG_LEVEL"):
        if found := lookup(ctx, name):
            source, level = name, found.value
            break
    if level is None and (level := await _health_level(ctx)):
        source = "GET /health log_level"
    if level is None or source is None:
        raise NotRun("no log level to read: set MSGOPS_LOG_LEVEL or LOG_LEVEL, or configure an API URL "
                   "whose /health reports log_level")
    observed = level.strip().upper()
    evidence = {"source": source, "observed": observed, "expected": want}
    if observed not in _LOG_LEVELS:
        return failed(f"{source} is {observed!r}, not a log level ({', '.join(_LOG_LEVELS)})", **evidence)
    if observed != want:
        return failed(f"log level is {observed} ({source}), expected {want}", **evidence)
    return passed(f"log level {observed} ({source})", **evidence)
