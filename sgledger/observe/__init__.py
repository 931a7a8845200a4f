"""What an operator sees of a running service: health, readiness, Prometheus metrics, JSON logs.

Every long-running command (`relay`, `project`, `alerts run`, `serve`, `gateway`, the checkpoint
publisher) takes `--metrics-port`; the HTTP endpoints are served from a daemon thread so they
answer while the service is busy or stuck, which is exactly when an operator asks.
"""
