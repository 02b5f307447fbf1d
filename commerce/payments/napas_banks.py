"""Which bank a VietQR code sends to: the bank's 6-digit NAPAS BIN, found from the short
name an operator knows from Sepay or VietQR (STREAMCART_SEPAY_BANK), or given as is."""

from __future__ import annotations

import re

# Short names as Sepay and VietQR spell them, a few older names and bank codes beside.
NAPAS_BINS = {
    "ABBANK": "970425",
    "ACB": "970416",
    "Agribank": "970405",
    "BacABank": "970409",
    "BaoVietBank": "970438",
    "BIDV": "970418",
    "BVBank": "970454",
    "VietCapitalBank": "970454",
    "CBBank": "970444",
    "CIMB": "422589",
    "COOPBANK": "970446",
    "DongABank": "970406",
    "Eximbank": "970431",
    "GPBank": "970408",
    "HDBank": "970437",
    "HongLeong": "970442",
    "IndovinaBank": "970434",
    "KienLongBank": "970452",
    "LPBank": "970449",
    "LienVietPostBank": "970449",
    "MBBank": "970422",
    "MB": "970422",
    "MSB": "970426",
    "NamABank": "970428",
    "NCB": "970419",
    "OCB": "970448",
    "Oceanbank": "970414",
    "PGBank": "970430",
    "PublicBank": "970439",
    "PVcomBank": "970412",
    "Sacombank": "970403",
    "SaigonBank": "970400",
    "SCB": "970429",
    "SeABank": "970440",
    "SHB": "970443",
    "ShinhanBank": "970424",
    "Techcombank": "970407",
    "TCB": "970407",
    "TPBank": "970423",
    "UnitedOverseas": "970458",
    "UOB": "970458",
    "VIB": "970441",
    "VietABank": "970427",
    "VietBank": "970433",
    "Vietcombank": "970436",
    "VCB": "970436",
    "VietinBank": "970415",
    "ICB": "970415",
    "VPBank": "970432",
    "VRB": "970421",
    "Woori": "970457",
}
BIN = re.compile(r"^\d{6}$")
_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def _key(name: str) -> str:
    """`MB Bank`, `mbbank` and `MBBank` are one bank: case, spaces and dashes aside."""
    return _NOT_ALNUM.sub("", name.casefold())


_BY_KEY = {_key(name): bin_ for name, bin_ in NAPAS_BINS.items()}


def napas_bin(bank: str) -> str | None:
    """The BIN of a bank named in the table, or the 6 digits given; None when unknown."""
    bank = bank.strip()
    if BIN.match(bank):
        return bank
    return _BY_KEY.get(_key(bank))
