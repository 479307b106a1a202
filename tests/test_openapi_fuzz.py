"""The OpenAPI, fuzzed: schemathesis generates requests for every operation (with a valid token) and
fails on any 5xx, on a status the OpenAPI does not document for that route, and on a response that
does not match its documented schema. Valid and invalid requests both; examples per operation are
bounded to keep it well under a minute."""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.support import RunningService

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _fuzz(operation: Any, headers: dict[str, str], mode: GenerationMode) -> Any:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def test_every_operation_answers_as_documented(service: RunningService) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    headers = service.user().headers
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        try:
            _fuzz(operation, headers, mode)()
        except Unsatisfiable:  # no parameters to make invalid (GET /health)
            continue
        except BaseException as exc:  # one line per operation that failed, all of them in one report
            if isinstance(exc, KeyboardInterrupt):
                raise
            first = str(exc).strip().splitlines()
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {' | '.join(first[:12])}")
    assert not failures, "\n".join(failures)
