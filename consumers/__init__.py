"""The sync engine: sync steps, mappings, matching, conflict rules, the planner and the applier loop.

It reaches the CRMs only through ports (protocols) it defines; `cdc` implements them over HTTP.
"""

__all__: list[str] = []
