"""Every status a route can answer, in the OpenAPI: the ones that come from shared mechanisms
(authentication, the body guard, validation, rate limits, database errors) are added here from
what each route depends on; routes document their own (403/404/409 of their logic) themselves."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.deps import get_current_user, require_service_role

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _shared_statuses(route: APIRoute) -> dict[int, str]:
    calls = _calls(route.dependant)
    statuses: dict[int, str] = {}
    if get_current_user in calls:
        statuses[401] = "Missing, invalid or expired bearer token"
        statuses[400] = "A value that cannot be stored (text with NUL characters)"
        statuses[503] = "The database is unavailable; retry after Retry-After seconds"
        if (route.methods or set()) & _WRITES:
            statuses[429] = "Rate limited; retry after Retry-After seconds"
            statuses[403] = "Not allowed"
    if require_service_role in calls:
        statuses[403] = "Service role only"
    if route.dependant.path_params:
        statuses[404] = "Not found, or not visible to you"
    if route.body_field is not None:
        statuses[413] = "Request body over the limit (MSGOPS_MAX_BODY_BYTES)"
        statuses[422] = "Invalid request"
    if route.dependant.query_params or route.dependant.path_params:
        statuses[422] = "Invalid request"
    return statuses


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif getattr(route, "original_router", None) is not None:  # an included router, kept as one entry
            found += _api_routes(route.original_router.routes)
    return found


def document(app: FastAPI) -> None:
    """Add the shared statuses to every route that does not already document them."""
    for route in _api_routes(app.routes):
        for status, description in _shared_statuses(route).items():
            if status not in route.responses and str(status) not in route.responses:
                route.responses[status] = {"description": description}
