"""The ingest and poll roles and what their sources share, knowing no CRM's API.

- ``service`` (`cdc ingest`: serves `cdc.hubspot.receiver`) and ``poll_service`` (`cdc poll`: runs
  `cdc.dataverse.poller` and `cdc.hubspot.reconciler` under leases), ``resync`` (`cdc resync`);
- what the sources share: ``publisher`` (change events to Kafka, acknowledged), ``leases`` (one replica
  per table), ``auth_pause`` (refused credentials pause a source), ``linked`` (the linked ids, for the
  pollers' delete checks), ``polled`` (the rule for what is polled).

The CRM packages import only the shared modules; the services import the CRM packages.
"""

__all__: list[str] = []
