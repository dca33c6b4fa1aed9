"""The push API answers as docs/openapi.yaml says: schemathesis sends generated requests (valid
and invalid bodies, every documented method, good, wrong and missing tokens, streams that take
pushes, that do not, and that do not exist) to a real daphne, and every answer must be a
documented status with a body and headers that match the document; no 5xx but the documented
503. Bounded: a fixed number of examples per operation, derandomized, so every run sends the
same requests.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.processes import ROOT, Stack, seed_streams
from tests.services import require_package

schemathesis = require_package("schemathesis")

from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SPEC = ROOT / "docs" / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Every refusal the document lists counts as rejecting invalid data (schemathesis's default list
# has no 413: a body of too many points is refused as too large, and rightly).
CONFIG = {
    "checks": {
        "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 413, 415, 429]},
    }
}
# Requests per operation (POST gets the most: it has the bodies).
EXAMPLES = {"POST": 250, "GET": 15, "PUT": 15, "PATCH": 15, "DELETE": 15}
# Small limits, so generated bodies cross them and 413 is exercised too.
LIMITS = {"LIVECHARTS_PUSH_MAX_BYTES": "2048", "LIVECHARTS_PUSH_MAX_POINTS": "20"}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    # The document says a string; invalid (negative) cases may be anything: send it as JSON.
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    return json.dumps(value).encode()


@pytest.fixture
def api(stack: Stack) -> tuple[Stack, str]:
    """A stack (daphne not started yet) with three streams: two push streams ("builds", whose
    token the test holds, and "other") and a simulate one ("line", seeded by the stack)."""
    tokens = seed_streams(
        stack,
        [
            {"slug": "builds", "title": "Builds", "feed_kind": "push", "feed_settings": {}},
            {"slug": "other", "title": "Other", "feed_kind": "push", "feed_settings": {}},
        ],
    )
    stack.env.update(LIMITS)
    return stack, tokens["builds"]


def test_every_answer_of_the_push_api_is_documented_and_none_is_a_server_error(api):
    stack, token = api
    stack.start_daphne()
    schema = schemathesis.openapi.from_path(str(SPEC), config=schemathesis.Config.from_dict(CONFIG))
    slugs = ["builds", "builds", "other", "line", "no-such-stream"]
    authorizations = [f"Bearer {token}", f"Bearer {token}", "Bearer lc_wrong", "Basic eDp5", None]
    sent: dict[str, list[int]] = {}

    for result in schema.get_all_operations():
        operation = result.ok()
        # The slug and the token are chosen here, not generated, so most requests reach the
        # body; given to schemathesis, they are not mutated and its checks know they are ours.
        cases = st.one_of(
            operation.as_strategy(
                mode,
                path_parameters={"slug": slug},
                headers={} if authorization is None else {"Authorization": authorization},
            )
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for slug in slugs
            for authorization in authorizations
        )

        @settings(
            max_examples=EXAMPLES[operation.method.upper()],
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def run(case: Any) -> None:
            checks = CHECKS
            if case.media_type == "application/x-ndjson" and not isinstance(case.body, str):
                # A "negative" NDJSON body (the document says a string) goes out as the JSON of
                # what was generated: `-1.03e-187` is then a valid line of one point, rightly
                # accepted. On the wire every body is text, so only the server-error and
                # conformance checks apply to these.
                checks = [check for check in CHECKS if check is not negative_data_rejection]
            response = case.call_and_validate(base_url=stack.base_url, checks=checks)
            sent.setdefault(case.method.upper(), []).append(response.status_code)

        run()

    # The run reached past the token and stream checks, to the bodies.
    statuses = set(sent["POST"])
    assert {202, 400, 401, 403, 404} <= statuses, sorted(statuses)
    assert set(sent["GET"]) == {405}

    by_hand = refusals(stack, token)
    assert {name: answer.status_code for name, answer in by_hand.items()} == {
        "too_long": 413,
        "too_many": 413,
        "plain": 415,
        "gzipped": 415,
    }
    case = documented_case(schema)
    for answer in by_hand.values():
        case.validate_response(answer, checks=HAND_CHECKS)


def refusals(stack: Stack, token: str) -> dict[str, httpx.Response]:
    """Requests the generated ones may not make: bodies over the limits, another content type,
    a compressed body. Four requests: far under the rate limit's burst of 40."""
    bearer = {"Authorization": f"Bearer {token}"}
    json_type = {**bearer, "Content-Type": "application/json"}
    url = f"{stack.base_url}/api/streams/builds/points"
    with httpx.Client(timeout=10) as client:
        return {
            "too_long": client.post(url, content=json.dumps([1.5] * 600).encode(), headers=json_type),
            "too_many": client.post(url, content=json.dumps(list(range(21))).encode(), headers=json_type),
            "plain": client.post(url, content=b"1", headers={**bearer, "Content-Type": "text/plain"}),
            "gzipped": client.post(url, content=b"1", headers={**json_type, "Content-Encoding": "gzip"}),
        }


def documented_case(schema: Any) -> Any:
    """A case of the POST operation, to check answers to requests made by hand against it."""
    post = schema["/api/streams/{slug}/points"]["POST"]
    return post.Case(path_parameters={"slug": "builds"}, media_type="application/json", body=1)


# No negative_data_rejection for answers to requests made by hand: they are not the case's own.
HAND_CHECKS = CHECKS[:-1]


def test_the_rate_limit_answers_as_documented(api):
    stack, token = api
    stack.env["LIVECHARTS_PUSH_RATE"] = "1"  # bursts of 2
    stack.start_daphne()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{stack.base_url}/api/streams/builds/points"
    answers: list[httpx.Response] = []
    with httpx.Client(timeout=10) as client:
        # At most 10, stopping at the first refusal (the bucket holds 2 and refills 1 a second).
        while len(answers) < 10 and 429 not in [answer.status_code for answer in answers]:
            answers.append(client.post(url, content=b"1", headers=headers))
    assert answers[-1].status_code == 429, [answer.status_code for answer in answers]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    documented_case(schemathesis.openapi.from_path(str(SPEC))).validate_response(
        answers[-1], checks=HAND_CHECKS
    )
