"""The VietQR is made here: its text field by field (NAPAS's EMVCo profile) with its
CRC-16/CCITT-FALSE, the bank found from its short name or BIN, and the SVG served from
this origin to whoever holds the payment's id, cached for good under its version. Headless
Chromium draws the served SVG and zxing-cpp reads the picture back to the same text."""

from __future__ import annotations

import io
import logging

import pytest
import zxingcpp
from PIL import Image

from commerce.payments.napas_banks import napas_bin
from commerce.payments.vietqr import (
    BAD_ACCOUNT,
    NOT_CONFIGURED,
    UNKNOWN_BANK,
    BankAccount,
    crc16_ccitt_false,
    transfer_payload,
)
from storage.ids import new_id
from tests.chromium_support import app_namespace, chromium_browser
from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer
from tests.test_cart_stock import checkout

ACCOUNT = "0123456789"
MBBANK_BIN = "970422"
PRICE = 250_000


def emv_fields(text: str) -> dict[str, str]:
    """ID -> value of a run of EMVCo fields (2-digit ID, 2-digit length, value)."""
    fields = {}
    while text:
        field_id, length = text[:2], int(text[2:4])
        fields[field_id] = text[4 : 4 + length]
        assert len(fields[field_id]) == length, f"field {field_id} is cut short"
        text = text[4 + length :]
    return fields


@pytest.fixture
def sql_url(tmp_path) -> str:
    """The VietQR is under test here, not the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_account": ACCOUNT, "sepay_bank": "MBBank"}


@pytest.fixture
async def ordered(api) -> dict:
    """A buyer's bank-transfer order of one product at PRICE: {"order", "token"}."""
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(api, seller["token"], seller["shop"]["id"], base_price=PRICE)
    ann = await buyer(api, "ann@example.com")
    response = await checkout(
        api, ann["token"], items=[{"product_id": product["id"], "quantity": 1}]
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    return {"order": order, "token": ann["token"]}


def test_the_crc_is_ccitt_false():
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogued check value
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_a_transfer_payload_field_by_field():
    text = transfer_payload("970436", ACCOUNT, PRICE, "SC12345678X")
    # Worked out by hand from the field layout: every length is the value's length.
    assert text.startswith(
        "000201"  # payload format 01
        "010212"  # point of initiation 12: dynamic, the amount is set
        "3854"  # merchant account information, 54 characters:
        "0010A000000727"  # NAPAS's GUID
        "01240006970436"  # beneficiary (24): acquirer BIN 970436 (Vietcombank),
        "01100123456789"  # the account number,
        "0208QRIBFTTA"  # service: transfer to an account
        "5303704"  # currency: VND
        "5406250000"  # amount
        "5802VN"  # country
        "62150811SC12345678X"  # additional data (15): purpose (08) = the payment code
        "6304"  # CRC, 4 characters, computed over everything up to here
    )
    fields = emv_fields(text)
    assert list(fields) == ["00", "01", "38", "53", "54", "58", "62", "63"]
    merchant = emv_fields(fields["38"])
    assert merchant == {"00": "A000000727", "01": "00069704360110" + ACCOUNT, "02": "QRIBFTTA"}
    assert emv_fields(merchant["01"]) == {"00": "970436", "01": ACCOUNT}
    assert emv_fields(fields["62"]) == {"08": "SC12345678X"}
    assert fields["63"] == f"{crc16_ccitt_false(text[:-4].encode()):04X}"


def test_a_zero_amount_leaves_the_amount_to_the_payer():
    fields = emv_fields(transfer_payload(MBBANK_BIN, ACCOUNT, 0, "SC12345678X"))
    assert fields["01"] == "11" and "54" not in fields


@pytest.mark.parametrize(
    ("bank", "found"),
    [
        ("MBBank", "970422"),
        ("MB Bank", "970422"),
        ("vietcombank", "970436"),
        ("VietinBank", "970415"),
        ("BIDV", "970418"),
        ("Techcombank", "970407"),
        ("LPBank", "970449"),
        ("Nam-A Bank", "970428"),
        (" 970999 ", "970999"),
        ("NoSuchBank", None),
        ("97042", None),
    ],
)
def test_a_bank_is_found_by_its_short_name_or_given_by_bin(bank, found):
    assert napas_bin(bank) == found


@pytest.mark.parametrize(
    ("account", "bank", "reason", "misconfigured"),
    [
        ("", "", NOT_CONFIGURED, False),
        (ACCOUNT, "", NOT_CONFIGURED, True),
        (ACCOUNT, "NoSuchBank", UNKNOWN_BANK.format(bank="NoSuchBank"), True),
        ("0123-456", "MBBank", BAD_ACCOUNT, True),
        (ACCOUNT, "MBBank", None, False),
    ],
)
def test_an_account_says_why_it_has_no_qr(account, bank, reason, misconfigured):
    configured = BankAccount(account, bank)
    assert configured.misconfigured is misconfigured
    assert configured.missing_reason == reason
    assert (configured.payload(PRICE, "SC12345678X") is None) is (reason is not None)


async def test_the_order_links_its_qr_served_here_to_whoever_holds_the_id(api, ordered):
    payment = ordered["order"]["payment"]
    assert payment["qr_payload"] == transfer_payload(MBBANK_BIN, ACCOUNT, PRICE, payment["code"])
    assert payment["qr_url"].startswith(f"/api/payments/{payment['id']}/qr.svg?v=")

    served = await api.get(payment["qr_url"])  # no token: an <img> cannot send one
    assert served.status == 200, await served.text()
    assert served.content_type == "image/svg+xml"
    assert served.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'"
    assert (await served.read()).startswith(b"<svg")
    for unversioned in ("", "?v=0000000000000000"):
        other = await api.get(f"/api/payments/{payment['id']}/qr.svg{unversioned}")
        assert other.status == 200 and other.headers["Cache-Control"] == "no-cache"

    made_up = await api.get(f"/api/payments/{new_id()}/qr.svg")
    await assert_problem(made_up, 404, "payment-not-found")
    # The id is the key, and only those who may read the order are given it.
    bob = await buyer(api, "bob@example.com")
    elsewhere = await api.get(f"/api/orders/{ordered['order']['id']}", headers=bearer(bob["token"]))
    await assert_problem(elsewhere, 404, "order-not-found")
    listed = await api.get("/api/orders", headers=bearer(bob["token"]))
    assert (await listed.json())["items"] == []


@pytest.mark.parametrize("api_settings", [{"sepay_account": ACCOUNT, "sepay_bank": "NoSuchBank"}])
async def test_an_unknown_bank_leaves_the_qr_out_and_says_why(api, ordered, caplog):
    payment = ordered["order"]["payment"]
    assert payment["qr_url"] is None and payment["qr_payload"] is None
    assert "NoSuchBank" in payment["qr_missing_reason"]
    assert payment["account"] == ACCOUNT and payment["bank"] == "NoSuchBank"
    served = await api.get(f"/api/payments/{payment['id']}/qr.svg")
    problem = await assert_problem(served, 404, "payment-qr-missing")
    assert problem["detail"] == payment["qr_missing_reason"]
    warned = [r for r in caplog.get_records("setup") if r.levelno == logging.WARNING]
    assert any("NoSuchBank" in r.getMessage() for r in warned)


async def test_chromium_draws_the_served_svg_and_zxing_reads_back_the_payload(
    api, ordered, tmp_path, monkeypatch
):
    payment = ordered["order"]["payment"]
    origin = api.make_url("/").origin()
    async with (
        app_namespace(origin, monkeypatch) as namespace,
        chromium_browser(namespace, tmp_path) as browser,
    ):
        page = await browser.new_page(device_scale_factor=2)
        response = await page.goto(f"{origin}{payment['qr_url']}")
        assert response is not None and response.status == 200
        assert response.headers["content-type"] == "image/svg+xml"
        picture = await page.screenshot(path=tmp_path / "vietqr.png")
    read = zxingcpp.read_barcodes(Image.open(io.BytesIO(picture)))
    assert [(r.format, r.text) for r in read] == [
        (zxingcpp.BarcodeFormat.QRCode, payment["qr_payload"])
    ]
