"""Live auctions: timed bidding on one product during a live session."""
