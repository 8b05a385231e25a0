"""The operator's view: health and readiness, Prometheus metrics, the access log and the audit log."""
