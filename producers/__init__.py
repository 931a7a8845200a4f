"""Agency side: the SDK that validates, chains and signs events into a durable local outbox, and
the relay that sends the outbox to Kafka, marking events sent only once the broker acknowledged
them."""
