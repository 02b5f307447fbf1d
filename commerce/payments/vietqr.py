"""VietQR transfer payloads, made here: the text of the QR code a buyer's bank app scans
to pre-fill the transfer (bank, account, amount, content).

VietQR is NAPAS's profile of the EMVCo merchant-presented QR: a flat run of fields, each
a 2-digit ID, a 2-digit length and the value, some holding fields of their own, closed
by a CRC of everything before it. Drawing the code from this text on our own origin
means no buyer depends on reaching a third-party image host.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

from commerce.payments.napas_banks import napas_bin

NAPAS_GUID = "A000000727"
TRANSFER_TO_ACCOUNT = "QRIBFTTA"  # NAPAS service code: inter-bank transfer to an account
VND = "704"  # ISO 4217
ACCOUNT = re.compile(r"^[0-9A-Za-z]{1,19}$")
MAX_PURPOSE = 25
CRC_FIELD = "6304"  # ID 63, length 4: the CRC covers the text up to and including this

NOT_CONFIGURED = (
    "The VietQR image, bank and account are missing because the operator has not set"
    " STREAMCART_SEPAY_ACCOUNT and STREAMCART_SEPAY_BANK."
)
UNKNOWN_BANK = (
    "The VietQR image is missing because STREAMCART_SEPAY_BANK ({bank!r}) names no bank"
    " this server knows: set the bank's short name (e.g. MBBank) or its 6-digit NAPAS BIN."
)
BAD_ACCOUNT = (
    "The VietQR image is missing because STREAMCART_SEPAY_ACCOUNT is not 1 to 19 letters or digits."
)


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, start 0xFFFF, no reflection, no final xor),
    the checksum EMVCo QR codes end with: binascii's CRC-CCITT started at 0xFFFF."""
    return binascii.crc_hqx(data, 0xFFFF)


def emv_field(field_id: str, value: str) -> str:
    if len(value) > 99:
        raise ValueError(f"field {field_id} is longer than 99 characters")
    return f"{field_id}{len(value):02d}{value}"


def transfer_payload(bank_bin: str, account: str, amount: int, purpose: str) -> str:
    """The payload for a transfer of `amount` VND to `account` at the bank `bank_bin`,
    with `purpose` as the transfer content. Dynamic (point of initiation 12) when an
    amount is set; a zero amount leaves it for the payer to type (static, 11)."""
    if not ACCOUNT.match(account) or len(purpose) > MAX_PURPOSE or amount < 0:
        raise ValueError("account, purpose or amount out of VietQR's bounds")
    beneficiary = emv_field("00", bank_bin) + emv_field("01", account)
    merchant_account = (
        emv_field("00", NAPAS_GUID)
        + emv_field("01", beneficiary)
        + emv_field("02", TRANSFER_TO_ACCOUNT)
    )
    text = "".join(
        (
            emv_field("00", "01"),  # payload format indicator
            emv_field("01", "12" if amount else "11"),  # point of initiation
            emv_field("38", merchant_account),
            emv_field("53", VND),
            emv_field("54", str(amount)) if amount else "",
            emv_field("58", "VN"),
            emv_field("62", emv_field("08", purpose)),  # additional data: purpose
            CRC_FIELD,
        )
    )
    return f"{text}{crc16_ccitt_false(text.encode('ascii')):04X}"


@dataclass(frozen=True)
class BankAccount:
    """The shop's receiving account as configured (STREAMCART_SEPAY_ACCOUNT and _BANK)."""

    account: str
    bank: str
    bank_bin: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bank_bin", napas_bin(self.bank))

    @property
    def missing_reason(self) -> str | None:
        """Why no VietQR can be made for this account; None when it can."""
        if not (self.account and self.bank):
            return NOT_CONFIGURED
        if self.bank_bin is None:
            return UNKNOWN_BANK.format(bank=self.bank)
        if not ACCOUNT.match(self.account):
            return BAD_ACCOUNT
        return None

    @property
    def misconfigured(self) -> bool:
        """Set, but not to something a VietQR can carry: worth a warning at start-up."""
        return bool(self.account or self.bank) and self.missing_reason is not None

    def payload(self, amount: int, purpose: str) -> str | None:
        """The VietQR text for a transfer here; None when `missing_reason` says why not."""
        if self.missing_reason is not None or self.bank_bin is None:
            return None
        return transfer_payload(self.bank_bin, self.account, amount, purpose)
