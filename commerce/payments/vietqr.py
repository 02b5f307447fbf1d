"""VietQR images through Sepay: the buyer's bank app scans it and pre-fills the transfer."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

QR_BASE = "https://qr.sepay.vn/img"


@dataclass(frozen=True)
class BankAccount:
    account: str
    bank: str

    def qr_url(self, amount: int, content: str) -> str | None:
        """None until the shop's receiving account is configured."""
        if not (self.account and self.bank):
            return None
        query = {"acc": self.account, "bank": self.bank, "amount": amount, "des": content}
        return f"{QR_BASE}?{urlencode(query)}"
