"""Shop vouchers: a discount a buyer claims (in a live drop) and spends at checkout."""
