"""Live sessions, the products on show and their pins: the floor of `live` that the
flash sales, streaming, the hub and analytics stand on (docs/architecture.md, "Inside
`live`"). It imports none of them."""
