"""Verify -> ledger -> per-child views -> policies -> flags, one database transaction a batch."""
