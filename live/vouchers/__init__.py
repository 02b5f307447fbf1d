"""Vouchers dropped on air: a seller drops a shop voucher in a live session and viewers
race to claim it (`service.py`); the figures for the replay and live stats (`report.py`)."""
