"""Where the env probes read a variable, and when a missing one is "not configured for this target".

Effective value of a name: the target's environment (process environment plus `env_file`), else what
the target itself supplies for it: `DATABASE_URL` <- the target's database URL, `MSGOPS_API_URL` <- its
API URL, `MSGOPS_JWT_SECRET` / `SUPABASE_JWT_SECRET` / `JWT_SECRET` <- its JWT secret (the service reads
the first two; `JWT_SECRET` is the seeds' name for the same secret). A local `msgops serve` target
therefore has them all.

Vendor rule: a name starting with a known vendor prefix (longest prefix wins) belongs to that vendor;
a vendor is *used* by the target when any variable of that vendor is set in the target's environment.
A missing variable of an unused vendor is "not configured for this target" (the check skips); a
missing variable of a used vendor, or of no vendor (a core variable), fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from msgops.probes.context import Context

TARGET_SUPPLIED = {
    "DATABASE_URL": "database_url",
    "MSGOPS_API_URL": "api_url",
    "MSGOPS_JWT_SECRET": "jwt_secret",
    "SUPABASE_JWT_SECRET": "jwt_secret",
    "JWT_SECRET": "jwt_secret",
}

VENDOR_PREFIXES = {
    "SUPABASE_": "Supabase",
    "NEXT_PUBLIC_SUPABASE_": "Supabase",
    "CLERK_": "Clerk",
    "NEXT_PUBLIC_CLERK_": "Clerk",
    "REDIS_": "Redis",
    "AWS_": "AWS",
    "S3_": "AWS",
    "STORAGE_": "object storage",
    "SENTRY_": "Sentry",
    "NEXT_PUBLIC_SENTRY_": "Sentry",
    "NEXT_PUBLIC_": "Next.js frontend",
    "VERCEL_": "Vercel",
    "STRIPE_": "Stripe",
    "FIREBASE_": "Firebase",
    "TWILIO_": "Twilio",
    "SENDGRID_": "SendGrid",
}

# Values people leave from templates: present, but not configured.
_PLACEHOLDER = re.compile(r"^(your[_-].*|<.*>|\$\{.*\}|changeme|change[_-]?me|todo|tbd|x{3,}|placeholder|\.{3}|…)$",
                          re.IGNORECASE)


@dataclass(frozen=True)
class Value:
    name: str
    value: str
    source: str  # "environment" or "target <field>"


def vendor_of(name: str) -> str | None:
    matches = [p for p in VENDOR_PREFIXES if name.upper().startswith(p)]
    return VENDOR_PREFIXES[max(matches, key=len)] if matches else None


def lookup(ctx: Context, name: str) -> Value | None:
    """The effective non-empty value of `name`, or None."""
    raw = (ctx.target.env.get(name) or "").strip()
    if raw:
        return Value(name, raw, "environment")
    field = TARGET_SUPPLIED.get(name)
    supplied = getattr(ctx.target, field) if field else None
    if supplied:
        return Value(name, str(supplied), f"target {field}")
    return None


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


# Settings of a vendor's command-line tools, not of an application: a machine with the AWS CLI set
# up does not make a deployment an AWS deployment.
_TOOLING = re.compile(r"^(AWS_(CA_BUNDLE|CONFIG_FILE|SHARED_CREDENTIALS_FILE|PAGER|CLI_.*|EC2_METADATA_.*)"
                      r"|REDISCLI_.*|SENTRY_CLI_.*)$")


def vendors_in_use(ctx: Context) -> set[str]:
    return {v for name, value in ctx.target.env.items()
            if value.strip() and not _TOOLING.match(name) and (v := vendor_of(name))}


def unused_vendor(ctx: Context, names: list[str]) -> str | None:
    """The vendor all of `names` belong to when the target uses none of their vendors, else None."""
    vendors = {vendor_of(n) for n in names}
    if None in vendors or vendors & vendors_in_use(ctx):
        return None
    return " / ".join(sorted(v for v in vendors if v))


def not_configured(names: list[str], vendor: str) -> str:
    return f"{' or '.join(names)}: not configured for this target (it sets no {vendor} variables)"
