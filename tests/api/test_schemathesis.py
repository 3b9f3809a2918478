"""Property-based requests from the OpenAPI schema (schemathesis): no input may cause a 5xx,
and every status the API answers is one the schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from tests.api.conftest import TOKEN

pytestmark = pytest.mark.slow
EXAMPLES = 6  # per operation: each upload becomes a real (failing) job on the worker
# Fields that would make a worker reach out to hosts the fuzzer invents.
OUTBOUND = ("callback_url", "output")


def test_no_input_causes_a_server_error(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def no_5xx(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict):
                for name in OUTBOUND:
                    case.body.pop(name, None)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error, status_code_conformance]
            )

        no_5xx()
