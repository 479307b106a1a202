"""The http probe family: every kind passes against the reference service and fails against a copy
broken in exactly the way the kind looks for, with evidence that names the broken object."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from msgops import probes
from msgops.checklist import probe_kinds
from msgops.config import Target
from msgops.probes import Context, Skip
from msgops.probes.http.endpoints import shape
from msgops.probes.http.flowkit import FLOWS
from msgops.results import Outcome
from tests import broken_service as broken
from tests.certs import certificates
from tests.support import JWT_SECRET, RunningService

SEED_ENDPOINTS = ["POST /conversations", "GET /conversations", "GET /conversations/{conversation_id}",
                  "PATCH /conversations/{conversation_id}/archive", "POST /conversations/{conversation_id}/messages",
                  "GET /conversations/{conversation_id}/messages",
                  "GET /conversations/{conversation_id}/messages/search", "PATCH /messages/:id/read",
                  "POST /communities", "GET /communities", "GET /communities/{community_id}",
                  "POST /communities/{community_id}/join", "POST /communities/{community_id}/leave",
                  "POST /communities/{community_id}/messages", "GET /communities/{community_id}/messages"]
ALL_HEADERS = ["Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy",
               "Permissions-Policy", "Strict-Transport-Security", "Cache-Control"]
ALL_CASES = ["missing", "expired", "invalid_signature", "alg_none", "wrong_audience", "malformed"]


async def run(service: RunningService, kind: str, target: dict[str, Any] | None = None, **params: Any) -> Outcome:
    implementation = probes.get(kind)
    assert implementation is not None, kind
    ctx = Context(Target(api_url=service.url, database_url=service.database_url, jwt_secret=JWT_SECRET,
                         **(target or {})))
    try:
        return await implementation.fn(ctx, **params)
    finally:
        await ctx.close()


def text(outcome: Outcome) -> str:
    return outcome.message + json.dumps(outcome.evidence, default=str)


@pytest.fixture
def make_broken(new_database: Callable[[], str]) -> Iterator[Callable[..., RunningService]]:
    started: list[RunningService] = []

    def make(**kwargs: Any) -> RunningService:
        running = broken.start_broken(new_database(), **kwargs)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


# --- the registry --------------------------------------------------------------------------------

def test_every_http_kind_and_flow_is_implemented_with_a_rule_doc() -> None:
    kinds = {k for k in probe_kinds() if k.startswith("http.")}
    registered = {k for k in probes.registry() if k.startswith("http.")}
    assert kinds == registered
    for kind in kinds:
        doc = probes.registry()[kind].doc
        assert all(len(part) > 20 for part in (doc.what, doc.why, doc.example, doc.fix)), kind
    assert set(probes.registry()["http.flow"].params.model_json_schema()["properties"]["flow"]["enum"]) == set(FLOWS)


def test_endpoint_shapes_match_seed_and_openapi_spellings() -> None:
    assert shape("/messages/:id/read") == shape("/messages/{message_id}/read") == "/messages/{}/read"
    assert shape("/conversations/") == "/conversations"


# --- every kind passes against the reference service ------------------------------------------

REFERENCE_CHECKS: list[tuple[str, dict[str, Any]]] = [
    ("http.health", {}),
    ("http.logging", {}),
    ("http.logging", {"level": "WARNING"}),  # the test service logs at WARNING
    ("http.metrics", {}),
    ("http.metrics", {"metrics": ["msgops_http_requests_total", "msgops_http_request_duration_seconds"]}),
    ("http.openapi_docs", {}),
    ("http.endpoints", {"endpoints": SEED_ENDPOINTS}),
    ("http.auth_required", {"cases": ALL_CASES}),
    ("http.protected_routes", {}),
    ("http.cors", {}),
    ("http.cors", {"allowed_origin": "http://127.0.0.1:3000"}),
    ("http.security_headers", {"headers": ALL_HEADERS}),
    ("http.status_codes", {"codes": [200, 201, 400, 401, 403, 404, 409, 422, 429]}),
    *[("http.rate_limit", {"action": a}) for a in
      ("send_message", "send_message_hourly", "create_conversation", "create_community")],
    ("http.validation_limit", {"field": "message_content", "max": 5000}),
    ("http.validation_limit", {"field": "community_name"}),
    ("http.xss_sanitized", {}),
    ("http.sql_injection", {}),
    ("http.no_email_leak", {}),
    *[("http.flow", {"flow": f}) for f in sorted(FLOWS)],
]


@pytest.mark.parametrize(("kind", "params"), REFERENCE_CHECKS,
                         ids=[f"{k}-{'-'.join(map(str, p.values()))[:40]}" for k, p in REFERENCE_CHECKS])
async def test_passes_against_the_reference_service(service: RunningService, kind: str,
                                                    params: dict[str, Any]) -> None:
    out = await run(service, kind, **params)
    assert out.status == "pass", text(out)[:2000]
    assert out.evidence


async def test_no_5xx_for_hostile_input_on_the_reference_service(service: RunningService) -> None:
    out = await run(service, "http.status_codes", codes=[500])
    assert out.status == "pass", text(out)[:2000]


async def test_tls_is_skipped_on_loopback_http(service: RunningService) -> None:
    with pytest.raises(Skip, match="loopback"):
        await run(service, "http.tls")


async def test_a_wrong_jwt_secret_is_named_with_its_fix(service: RunningService) -> None:
    ctx = Context(Target(api_url=service.url, jwt_secret=JWT_SECRET[::-1]))  # not the one the service verifies with
    flow = probes.get("http.flow")
    assert flow is not None
    try:
        with pytest.raises(probes.CannotEvaluate, match="set MSGOPS_JWT_SECRET to the secret the service") as caught:
            await flow.fn(ctx, flow="send_message")
    finally:
        await ctx.close()
    assert "answered 401" in str(caught.value) and "signature" in str(caught.value)


# --- and each fails against a copy broken in exactly its way -----------------------------------

async def test_health_fails_when_the_database_check_fails(make_service: Callable[..., RunningService]) -> None:
    svc = make_service()
    svc.sql("alter table msgops_meta.schema_migrations rename to schema_migrations_gone")
    out = await run(svc, "http.health")
    assert out.status == "fail"
    assert out.evidence["status"] == 503 and "error" in out.evidence["database"]


async def test_logging_fails_on_the_wrong_level(service: RunningService) -> None:
    out = await run(service, "http.logging", level="INFO")
    assert out.status == "fail" and out.evidence["log_level"] == "WARNING" and out.evidence["expected"] == "INFO"
    prod = await run(service, "http.logging", target={"environment": "production"})
    assert prod.status == "fail" and "expected INFO" in prod.message


async def test_metrics_fail_when_a_family_is_missing(service: RunningService,
                                                     make_broken: Callable[..., RunningService]) -> None:
    out = await run(service, "http.metrics", metrics=["msgops_http_requests_total", "msgops_no_such_metric"])
    assert out.status == "fail" and out.evidence["missing"] == ["msgops_no_such_metric"]

    class NoMetrics(broken.NotFound):
        path = "/metrics"

    gone = await run(make_broken(wrap=NoMetrics), "http.metrics")
    assert gone.status == "fail" and gone.evidence["response"]["status"] == 404


async def test_openapi_docs_fail_without_docs(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.NotFound), "http.openapi_docs")
    assert out.status == "fail" and out.evidence["docs"]["request"] == "GET /docs"


async def test_endpoints_fail_when_missing_or_crashing(make_broken: Callable[..., RunningService]) -> None:
    search = "GET /conversations/{conversation_id}/messages/search"
    out = await run(make_broken(wrap=broken.SearchMissing), "http.endpoints", endpoints=SEED_ENDPOINTS)
    assert out.status == "fail" and out.evidence["missing"] == [search]
    crashing = await run(make_broken(wrap=broken.SearchCrashes), "http.endpoints",
                         endpoints=[search, "GET /conversations"])
    assert crashing.status == "fail" and crashing.evidence["broken"] == [f"{search} (500)"]


async def test_auth_fails_when_the_verifier_checks_nothing(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(change=broken.lax_verifier), "http.auth_required", cases=ALL_CASES)
    assert out.status == "fail"
    refused = {a.split(" ")[0] for a in out.evidence["accepted"]}
    assert {"expired", "invalid_signature", "alg_none", "wrong_audience"} <= refused
    assert "missing" not in refused
    for seen in out.evidence["cases"].values():  # tokens are masked in the evidence
        assert all(len(s["token"]) <= 9 or s["token"] == "(none)" for s in seen)


async def test_protected_routes_fail_on_a_route_without_auth(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(change=broken.add_unprotected_route), "http.protected_routes")
    assert out.status == "fail"
    assert [o["operation"] for o in out.evidence["not_401"]] == ["GET /communities/{community_id}/export"]


async def test_cors_fails_when_any_origin_is_allowed(make_service: Callable[..., RunningService]) -> None:
    out = await run(make_service(cors_origins=("*",)), "http.cors")
    assert out.status == "fail" and "https://attacker.example" in out.message
    assert out.evidence["disallowed_preflight"]["headers"]["access-control-allow-origin"] == "*"


async def test_cors_needs_a_known_allowed_origin(make_service: Callable[..., RunningService]) -> None:
    svc = make_service(cors_origins=("https://app.example.com",))
    with pytest.raises(Skip, match="allowed_origin"):
        await run(svc, "http.cors")
    out = await run(svc, "http.cors", target={"cors_allowed_origin": "https://app.example.com"})
    assert out.status == "pass", text(out)


async def test_security_headers_fail_on_a_dropped_header(service: RunningService,
                                                         make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.DropHeader), "http.security_headers", headers=ALL_HEADERS)
    assert out.status == "fail"
    assert all(p.startswith("X-Frame-Options missing") for p in out.evidence["problems"])
    prod = await run(service, "http.security_headers", target={"environment": "production"},
                     headers=["Strict-Transport-Security"])
    assert prod.status == "fail" and prod.evidence["hsts_required"] is True


async def test_status_codes_fail_when_validation_errors_are_500(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.ValidationErrorsAre500), "http.status_codes", codes=[200, 422, 500])
    assert out.status == "fail"
    assert out.evidence["codes"]["422"]["reached"] is False
    assert any(e["purpose"] == "an empty message" for e in out.evidence["server_errors"])


@pytest.mark.parametrize("action", ["send_message", "send_message_hourly", "create_conversation", "create_community"])
async def test_rate_limit_fails_when_limits_are_off(make_service: Callable[..., RunningService], action: str) -> None:
    out = await run(make_service(rate_limits={}), "http.rate_limit", action=action)
    assert out.status == "fail"
    assert out.evidence["action"] == action and out.evidence["accepted"] == out.evidence["limit"] + 1
    assert out.evidence["refused_429"] == 0


@pytest.mark.parametrize(("field", "name"), [("message_content", "content"), ("community_name", "name")])
async def test_validation_limit_fails_when_long_text_is_accepted(
        make_broken: Callable[..., RunningService], field: str, name: str) -> None:
    out = await run(make_broken(wrap=broken.TruncateLongText), "http.validation_limit", field=field)
    assert out.status == "fail" and out.evidence["field"] == field
    limit = out.evidence["max"]
    assert out.evidence[f"at_{limit + 1}"]["status"] == 201


async def test_xss_fails_when_markup_is_echoed(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.EchoRawContent), "http.xss_sanitized")
    assert out.status == "fail"
    assert any("<script>" in p or "onerror" in p for p in out.evidence["problems"])
    assert "/messages" in out.evidence["problems"][0]


async def test_sql_injection_fails_on_a_formatted_query(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(change=broken.injectable_community_search), "http.sql_injection")
    assert out.status == "fail"
    assert any(p.startswith("GET /communities?q=") and "500" in p for p in out.evidence["problems"])
    assert out.evidence["first_5xx"]["status"] == 500


async def test_no_email_leak_fails_when_a_response_has_an_email(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.LeakEmail), "http.no_email_leak")
    assert out.status == "fail"
    places = {(f["url"].rsplit("/", 1)[0], f["path"]) for f in out.evidence["findings"]}
    assert places == {("GET /conversations", "$.email")}


# --- flows ---------------------------------------------------------------------------------------

BROKEN_DATA = {
    "attendee_dm_dealer_blocked": "insert into public.dm_permissions values ('attendee', 'dealer'), "
                                  "('dealer', 'attendee')",
    "organizer_broadcast_quota": "update public.broadcast_permissions set quota = 10 where sender_role = 'organizer'",
    "mvp_broadcast_audience": "insert into public.broadcast_permissions "
                              "values ('mvp_dealer', 'dealers', 'pre_show', 1)",
    "moderator_soft_delete": """create or replace function public.moderate_delete_message(target uuid)
                                returns boolean language sql security definer set search_path = ''
                                as $$ select true $$""",
}


@pytest.mark.parametrize("flow", sorted(BROKEN_DATA))
async def test_flow_fails_when_the_rule_is_broken_in_the_database(
        make_service: Callable[..., RunningService], flow: str) -> None:
    svc = make_service()
    svc.sql(BROKEN_DATA[flow])
    out = await run(svc, "http.flow", flow=flow)
    assert out.status == "fail", text(out)
    failing = [s for s in out.evidence["steps"] if not s["ok"]]
    assert len(failing) == 1 and failing[0]["step"] in out.message


async def test_idempotent_send_fails_when_the_key_is_ignored(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.ForgetClientMsgId), "http.flow", flow="idempotent_send")
    assert out.status == "fail" and "the retry returns the first message" in out.message


async def test_error_handling_fails_on_500s(make_broken: Callable[..., RunningService]) -> None:
    out = await run(make_broken(wrap=broken.ValidationErrorsAre500), "http.flow", flow="error_handling")
    assert out.status == "fail" and "a 4xx answer" in out.message
    assert out.evidence["steps"][-1]["ok"] is False


# --- TLS -----------------------------------------------------------------------------------------

async def test_tls_fails_on_plain_http_in_production() -> None:
    ctx = Context(Target(api_url="http://api.example.test", environment="production"))
    try:
        out = await probes.registry()["http.tls"].fn(ctx)  # judged from the URL: nothing is sent
    finally:
        await ctx.close()
    assert out.status == "fail" and out.evidence["api_url"] == "http://api.example.test"


async def test_tls_passes_with_a_trusted_certificate_and_fails_with_an_untrusted_one(
        make_broken: Callable[..., RunningService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = certificates(tmp_path)
    svc = make_broken(ssl_certfile=str(cert), ssl_keyfile=str(key))
    assert svc.url.startswith("https://")
    untrusted = await run(svc, "http.tls", target={"environment": "staging"})
    assert untrusted.status == "fail" and "not trusted" in untrusted.message
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    trusted = await run(svc, "http.tls", target={"environment": "production"})
    assert trusted.status == "pass", text(trusted)
    assert trusted.evidence["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert 50 < trusted.evidence["certificate"]["days_left"] <= 60
