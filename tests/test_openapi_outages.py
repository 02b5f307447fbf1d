"""The OpenAPI document's 503 against a real database outage, found by asking: with
PostgreSQL cut off (a TCP proxy in front of the shared server, which keeps running),
every operation is called with a simple valid request (schemathesis's first positive
example) by each caller its security admits. One that answers 503 must document it
with its Retry-After header, and none may answer 500."""

from __future__ import annotations

import asyncio

import hypothesis
import pytest
import schemathesis
from sqlalchemy.engine import make_url

from commerce.accounts.models import Role
from live.app import build_app
from tests.commerce_support import account, seller_with_shop
from tests.tcp_proxy import TcpProxy
from tests.test_auth import bearer

pytestmark = pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)

SEPAY_KEY = "outage-key"
# Operations documented as reaching a backend that refuse the first positive example
# before they do: an empty SDP offer, a push endpoint that is not a URL, a voucher
# window that ends as it starts.
REFUSED_FIRST = {
    "POST /api/live-sessions/{live_session_id}/whep",
    "POST /api/whip",
    "POST /api/me/push-subscriptions",
    "POST /api/shops/{shop_id}/vouchers",
}
FIRST_EXAMPLE = hypothesis.settings(
    database=None,
    derandomize=True,
    phases=[hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
# Who calls each operation, by the security scheme it declares (None: public).
CALLERS = {
    "bearerAuth": ("admin", "seller", "buyer"),
    "sepayApiKey": ("sepay",),
    "streamKey": ("stream key",),
    None: ("nobody", "buyer"),
}
schemathesis.serializer.alias("application/sdp", "text/plain")  # WHIP and WHEP offers


@pytest.fixture
async def database_cut_off(aiohttp_client, sql_engine, sql_url, settings_for):
    """The app on PostgreSQL through a proxy, and its callers' headers; `cut()` the proxy."""
    target = make_url(sql_url)
    proxy = TcpProxy(target.host, target.port or 5432)
    port = await proxy.start()
    try:
        through = target.set(port=port).render_as_string(hide_password=False)
        api = await aiohttp_client(build_app(settings_for(through, sepay_api_key=SEPAY_KEY)))
        admin = await account(api, "outage-admin@example.com", Role.ADMIN)
        seller = await seller_with_shop(api, "outage-seller@example.com")
        buyer = await account(api, "outage-buyer@example.com")
        headers = {
            "admin": bearer(admin["token"]),
            "seller": bearer(seller["token"]),
            "buyer": bearer(buyer["token"]),
            "sepay": {"Authorization": f"Apikey {SEPAY_KEY}"},
            "stream key": bearer("a-stream-key"),
            "nobody": {},
        }
        yield api, proxy, headers
    finally:
        await proxy.close()


def first_valid_case(operation) -> schemathesis.Case:
    strategy = operation.as_strategy(schemathesis.GenerationMode.POSITIVE)
    return hypothesis.find(strategy, lambda _: True, settings=FIRST_EXAMPLE)


def documents_the_outage(spec: dict, responses: dict) -> bool:
    """The operation's 503 is the dependency-unavailable answer, with Retry-After."""
    documented = responses.get("503", {})
    if "$ref" in documented:
        documented = spec["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    return documented.get("headers", {}).get("Retry-After", {}).get("required") is True


def scheme_of(doc: dict) -> str | None:
    (requirement,) = doc.get("security", [{None: []}])
    (scheme,) = requirement
    return scheme


def misdocumented(spec: dict, doc: dict, response, call: str) -> list[str]:
    """What is wrong with a 500 or 503 answer: a 500 always; a 503 the document lacks;
    a `dependency-unavailable` one without the database named, Retry-After or its doc."""
    if response.status_code == 500 or "503" not in doc["responses"]:
        return [f"{call}: undocumented {response.status_code} {response.content[:300]!r}"]
    body = response.json()
    if body.get("code") != "dependency-unavailable":
        return []  # another documented 503 (the readiness check's)
    (retry_after,) = response.headers.get("retry-after", ["0"])  # schemathesis: lists
    if (
        body.get("backend") == "database"
        and int(retry_after) >= 1
        and documents_the_outage(spec, doc["responses"])
    ):
        return []
    return [f"{call}: 503 {body} Retry-After: {retry_after}"]


async def test_every_operation_that_reaches_the_database_documents_its_503(database_cut_off):
    api, proxy, headers = database_cut_off
    spec = await (await api.get("/openapi.json")).json()
    base_url = str(api.make_url("/"))
    proxy.cut()
    reached, wrong = set(), []
    for result in schemathesis.openapi.from_dict(spec).get_all_operations():
        operation = result.ok()
        doc = spec["paths"][operation.path][operation.method.lower()]
        case = first_valid_case(operation)
        for caller in CALLERS[scheme_of(doc)]:
            response = await asyncio.to_thread(
                case.call, base_url=base_url, headers=headers[caller], timeout=15
            )
            if response.status_code in (500, 503):
                wrong += misdocumented(spec, doc, response, f"{operation.label} as {caller}")
            if response.status_code == 503:
                reached.add(operation.label)
                break
    assert not wrong, "\n".join(wrong)
    documented = {
        f"{method.upper()} {path}"
        for path, methods in spec["paths"].items()
        for method, doc in methods.items()
        if documents_the_outage(spec, doc["responses"])
    }
    assert documented - reached <= REFUSED_FIRST, sorted(documented - reached - REFUSED_FIRST)
