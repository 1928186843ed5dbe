"""The probes: one package per family of measurements, mirroring the config sections.

`probes.registry` is the one way in from the service side: which probes a config enables,
the tables they write and their metric collectors. `probes.base` is what every probe is.
Each family lives in its own package (`replication`, `latency`, `read_models`), beside
`reachability`; families never import each other.
"""
