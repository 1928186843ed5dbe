"""Exposing the HTTP endpoints safely: the web config file (TLS, basic auth, headers, in the
Prometheus exporter-toolkit format), its reload, and the HTTP limits on every listener."""
