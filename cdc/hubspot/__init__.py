"""Everything HubSpot: the API edge and what the daemon does with it.

- ``paths``: every API endpoint (method, path, metric label) and the object-type names the paths take;
- ``client`` (one retry policy, search's limiter, metrics), ``errors`` (answers sorted by what the caller
  does next), ``search`` (paging by modification time, pure);
- ``signatures``, ``events`` (webhook bodies -> change events, pure) and ``receiver`` (the webhook app of
  `cdc ingest`);
- ``reconciler``: the search poller of `cdc poll`;
- ``gateway`` (with ``_results``, batch answers matched to inputs): the sync engine's `CrmGateway` port;
- ``provisioning``: properties, the property group and webhook subscriptions for `cdc provision`.

It imports nothing of Dataverse's (`cdc.dataverse`) nor the roles that use it; import-linter contracts
hold it to that. Import from the modules (they pull in different dependencies: starlette, aiohttp).
"""

__all__: list[str] = []
