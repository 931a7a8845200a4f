"""Domain core: the event envelope, its vocabulary, signing and verification, the ledger store.

Everything here except ``ledger.store`` and ``ledger.keystore`` is pure: no Kafka, no SQL, no
clock. Agency systems, the projector and auditors all build on the same functions, so a signature
that verifies for one verifies for all.
"""
