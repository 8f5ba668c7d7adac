"""Observability for every process: structured logs (logs.py), Prometheus metrics (metrics.py),
OpenTelemetry tracing and build context through Temporal interceptors (tracing.py,
interceptors.py), Temporal search attributes (search_attributes.py) and where a build's logs
are (log_locations.py). docs/OBSERVABILITY.md describes what each gives an operator."""
