"""Health: verdicts from the probes' observations, served as endpoints and as metrics.

The verdict logic is pure and knows no event loop: `verdicts` judges one reading against
its threshold, `hysteresis` steadies a component's status over its readings, `evaluation`
turns one reading per probe into an immutable `snapshot`. Around it, `monitor` runs the
evaluation on a fixed cadence, `http` serves the endpoints (bodies from `bodies`), and
`metrics` exports the state sets. The verdict of a single reading is importable from here.
"""

from exporter.health.verdicts import Reason, Status, judge, threshold_for, worst

__all__ = ["Reason", "Status", "judge", "threshold_for", "worst"]
