"""The daemon's three roles, each a long-running command with its own probe server.

- ``ingest`` (`cdc ingest`): serves the HubSpot webhook receiver (`cdc.hubspot.receiver`);
- ``poll`` (`cdc poll`): the Dataverse poller and the HubSpot reconciler, one replica per table
  (``leases``);
- ``sync`` (`cdc sync`): the router and the apply loop of the sync engine (`consumers`).

``probes`` is the one ``/healthz``, ``/readyz``, ``/metrics`` app all three serve. No role imports another.
"""

__all__: list[str] = []
