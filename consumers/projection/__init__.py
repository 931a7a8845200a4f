"""Stage 2: child projection, following the ledger's notification log in shards (docs/stages.md)."""
