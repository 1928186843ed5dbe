"""Service level objectives: SLI counters in time slices, and read-your-writes guidance.

`slices` counts, for each time-slice SLO and component, the health evaluations in which the
check held (pure); `freshness` keeps each read datacenter's recent sentinel visibilities and
answers how long after a command's acknowledgement a read there sees it (pure); `monitor`
feeds both from each health evaluation and exports them; `http` serves `/freshness`.
The rules, dashboard and OpenSLO document built on them are in `exporter.generate`.
"""
