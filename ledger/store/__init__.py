"""The ledger of accepted events, persisted through eventsourcing + SQLAlchemy (SQL lives here)."""
