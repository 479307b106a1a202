"""Answers encoded once. A route that returns a model has FastAPI validate it again against its
response_model and encode it through jsonable_encoder; the hot paths return these instead (the route
keeps `response_model` for the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), status_code=status_code,
                    media_type="application/json")
