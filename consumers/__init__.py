"""The sync engine: sync steps, mappings, matching, conflict rules, the planner and the applier.

The decisions are pure modules (`planner`, `routing`, `units`, `merges`, `settle`, `batch`, ...); the
asynchronous shell around them (`applier`, `router`, `apply_loop`) reaches the CRMs only through ports
(protocols) it defines, which `cdc` implements over HTTP, and Kafka through `streams`.
"""

__all__: list[str] = []
