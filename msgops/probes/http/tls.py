"""http.tls: the API is served over HTTPS with a trusted, current certificate and a modern protocol."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from msgops.probes import probe
from msgops.probes.context import CannotEvaluate, Context, Skip
from msgops.probes.http.common import is_loopback
from msgops.results import Outcome, failed, passed

MIN_DAYS_LEFT = 14
_OLD_PROTOCOLS = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}


def _verify_error(exc: BaseException) -> str | None:
    """The certificate-verification reason inside a connection error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


@probe("http.tls",
       what="The API URL is https, its certificate verifies against the system trust store, expires in "
            "more than 14 days, and the protocol is TLS 1.2 or newer. Plain HTTP is skipped only on "
            "loopback or a development target.",
       why="Tokens and messages cross the network in every request; without TLS anyone on the path "
           "reads and replays them.",
       example="environment: production with api_url http://api.example.com, or a self-signed or "
               "expiring certificate.",
       fix="Terminate TLS at the load balancer or uvicorn (--ssl-certfile/--ssl-keyfile) with a "
           "certificate from a public CA, renewed automatically; publish only the https URL.")
async def tls(ctx: Context) -> Outcome:
    url = ctx.require_api()
    parts = urlsplit(url)
    host = parts.hostname or ""
    evidence: dict[str, Any] = {"api_url": url, "environment": ctx.target.environment}
    if parts.scheme != "https":
        if is_loopback(host) or ctx.target.environment == "development":
            where = "loopback" if is_loopback(host) else "a development target"
            raise Skip(f"{url} is plain HTTP on {where}; TLS is checked against staging and production "
                       "(set environment and an https api_url)")
        return failed(f"the API is served over plain HTTP ({url}) in {ctx.target.environment}", **evidence)
    async with httpx.AsyncClient(timeout=10, trust_env=True) as client:
        try:
            r = await client.get(url.rstrip("/") + "/health")
        except httpx.ConnectError as exc:
            reason = _verify_error(exc)
            if reason is None:
                raise
            return failed(f"the certificate of {host} is not trusted: {reason}", **evidence)
        stream = r.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        raise CannotEvaluate("could not read the TLS session of the connection")
    protocol = ssl_object.version()
    cert = ssl_object.getpeercert() or {}
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC) if "notAfter" in cert \
        else None
    days_left = (expires - datetime.now(UTC)).days if expires else None
    evidence.update(protocol=protocol, cipher=(ssl_object.cipher() or ("",))[0], status=r.status_code,
                    certificate={"subject": _name(cert.get("subject")), "issuer": _name(cert.get("issuer")),
                                 "not_after": cert.get("notAfter"), "days_left": days_left})
    if protocol in _OLD_PROTOCOLS:
        return failed(f"{host} negotiated {protocol}; TLS 1.2 or newer is required", **evidence)
    if days_left is not None and days_left < MIN_DAYS_LEFT:
        return failed(f"the certificate of {host} expires in {days_left} days", **evidence)
    return passed(f"{host}: {protocol}, trusted certificate valid for {days_left} more days", **evidence)


def _name(rdns: Any) -> str:
    """`((('commonName', 'x'),),)` -> `commonName=x`."""
    if not rdns:
        return ""
    return ", ".join(f"{k}={v}" for rdn in rdns for k, v in rdn)
