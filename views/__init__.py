"""Per-child views and flags: the read side built by the projector from the ledger."""
