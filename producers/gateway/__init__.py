"""The agency gateway: an HTTP service inside an agency's network that holds the agency's key.

Agency systems in any language post event drafts (or events they signed themselves) over HTTP;
the gateway checks them with the same code as the Python SDK, signs, chains and commits them to
the durable outbox, and its relay delivers the outbox to the partnership's Kafka. See
docs/gateway.md.
"""
