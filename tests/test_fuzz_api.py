"""Schema-driven fuzzing of the whole HTTP API on PostgreSQL: schemathesis draws requests
from the OpenAPI document (valid ones and ones that break it) and sends them to the
running app as a seller, a buyer, an admin, Sepay or nobody; no answer may be a 5xx or
stray from the document (status, content type, body schema).

Bounded: a few examples per operation (STREAMCART_TEST_FUZZ_EXAMPLES for a deeper run),
the same ones every run, no shrinking, so the suite stays fast and never flaky; a
failure prints the request to reproduce it with.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from commerce.accounts.models import Role
from tests.commerce_support import account
from tests.hub_support import seller_on_air
from tests.test_auth import PASSWORD, bearer

SEPAY_KEY = "fuzz-key"
DEFAULT_EXAMPLES = 12
MAX_EXAMPLES = int(os.environ.get("STREAMCART_TEST_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
# Generous on a busy 2-core machine: the default run takes about 20 s when it is idle.
WITHIN_SECONDS = 90 * MAX_EXAMPLES / DEFAULT_EXAMPLES

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.timeout(180 * MAX_EXAMPLES / DEFAULT_EXAMPLES),
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same requests every run: a failure is reproducible, not flaky
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
schemathesis.serializer.alias("application/sdp", "text/plain")  # WHEP offers are text
# What `{id}` names under each path.
ID_OF = {"/api/shops/": "shop_id", "/api/products/": "product_id"}


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_api_key": SEPAY_KEY}


async def known_world(api) -> tuple[dict[str, str], dict[str, str]]:
    """Who may call (an email per role) and ids that exist, so some requests reach real
    rows instead of 404s: a live session with a product, a cart line, an order."""
    seller = await seller_on_air(api, "fuzz-seller@example.com")
    buyer = await account(api, "fuzz-buyer@example.com")
    admin = await account(api, "fuzz-admin@example.com", Role.ADMIN)
    product_id = seller["product"]["id"]
    cart = await api.post(
        "/api/cart/items", json={"product_id": product_id}, headers=bearer(buyer["token"])
    )
    assert cart.status == 201, await cart.text()
    placed = await api.post(
        "/api/orders/checkout",
        json={"payment_method": "cod", "items": [{"product_id": product_id, "quantity": 1}]},
        headers=bearer(buyer["token"]),
    )
    assert placed.status == 201, await placed.text()
    emails = {who["user"]["role"]: who["user"]["email"] for who in (seller, buyer, admin)}
    ids = {
        "shop_id": seller["shop"]["id"],
        "product_id": product_id,
        "live_session_id": seller["live_id"],
        "item_id": (await cart.json())["items"][0]["id"],
        "order_id": (await placed.json())["orders"][0]["id"],
    }
    return emails, ids


def callers(base_url: str, emails: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each caller's headers, with logins of their own (fuzzing logout ends a login)."""
    headers: dict[str, dict[str, str]] = {"sepay": {"Authorization": f"Apikey {SEPAY_KEY}"}}
    for role, email in emails.items():
        response = requests.post(
            f"{base_url}api/auth/login", json={"email": email, "password": PASSWORD}, timeout=15
        )
        assert response.status_code == 200, response.text
        headers[role] = bearer(response.json()["access_token"])
    return {**headers, "nobody": {}}


def fuzz(spec: dict, base_url: str, emails: dict[str, str], ids: dict[str, str]) -> list[str]:
    """Every operation's failures, as schemathesis explains them (with a curl command)."""
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Logged in up front: fuzzing the login soon makes this address wait (429).
    logins = [callers(base_url, emails) for _ in operations]
    failures = []
    for operation, headers in zip(operations, logins, strict=True):
        try:
            _fuzz_operation(operation, base_url, headers, ids)
        except (Exception, FailureGroup) as exc:  # every operation's failures are reported
            failures.append(f"{operation.label}:\n{exc}")
    return failures


def _fuzz_operation(operation: Any, base_url: str, callers: dict, ids: dict) -> None:
    known = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
    for prefix, name in ID_OF.items():
        if operation.path.startswith(prefix):
            known["id"] = ids[name]
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        operation.as_strategy(path_parameters=known) if known else st.nothing(),
    )

    @SETTINGS
    @hypothesis.given(
        case=cases,
        caller=st.sampled_from(sorted(callers)),
        real_ids=st.booleans(),
        nul=st.booleans(),
    )
    def run(case, caller: str, real_ids: bool, nul: bool) -> None:
        if real_ids and isinstance(case.body, dict):
            case.body.update({k: v for k, v in ids.items() if k in case.body})
        if nul:  # what the attack sent: NUL in every text (PostgreSQL cannot store it)
            case.query, case.body = with_nul(case.query), with_nul(case.body)
            case.path_parameters = with_nul(case.path_parameters)
        response = case.call(base_url=base_url, headers=callers[caller], timeout=15)
        case.validate_response(response, checks=CHECKS)

    run()


def with_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value + "\x00"
    if isinstance(value, dict):
        return {key: with_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_nul(item) for item in value]
    return value


async def test_no_request_the_schema_allows_or_breaks_is_answered_with_5xx(api):
    emails, ids = await known_world(api)
    spec = await (await api.get("/openapi.json")).json()
    started = time.monotonic()
    failures = await asyncio.to_thread(fuzz, spec, str(api.make_url("/")), emails, ids)
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert elapsed < WITHIN_SECONDS, f"fuzzing took {elapsed:.0f} s"
