"""The reference CQRS workload: an order service that keeps its read models in sync three ways.

Commands (create an order; optionally change an order's status) arrive at a fixed rate. The
command writes `orders_by_id` and, by the current sync mode:

- `in-request`: writes `orders_by_customer` and `orders_by_date` in the same logged batch as
  `orders_by_id` (the pattern's synchronous sync: one request, one write time);
- `async`: hands the sync to a consumer that writes them after an injected delay;
- `projection`: appends the event to `events` (and `event_feed`); a projector reads the feed
  in order from its checkpoint, projects each event, and advances the checkpoint.

An injected failure rate drops read-model writes or writes a wrong total. Every knob can be
changed while the workload runs, and the projector can be stopped and started. Usable as an
asyncio object (`Workload`), from a thread (`WorkloadThread`), or as a process:
`python -m testbed.workload --help`.

The parts: the schema (schema), the order domain (orders), the knobs (knobs) and what they
inject (faults), the driver session (session), the order service with its async consumer
(service), the event store and projector (projector), the ground truth it keeps (stats), a
thread to run it from synchronous code (thread), its command line (cli), and the read-model
declarations the exporter needs for it (read_models).
"""

from testbed.workload.knobs import Knobs, SyncMode
from testbed.workload.orders import Order
from testbed.workload.service import Workload
from testbed.workload.stats import WorkloadStats
from testbed.workload.thread import WorkloadThread

__all__ = ["Knobs", "Order", "SyncMode", "Workload", "WorkloadStats", "WorkloadThread"]
