"""What the change sources share, knowing no CRM's API.

The sources are HubSpot's webhook receiver (`cdc.hubspot.receiver`), the Dataverse poller
(`cdc.dataverse.poller`), the HubSpot reconciler (`cdc.hubspot.reconciler`) and `cdc resync`
(`cdc.ops.resync`). What they share: ``publisher`` (change events to Kafka, acknowledged), ``auth_pause``
(refused credentials pause a polled source), ``linked`` (the linked ids, for the pollers' delete checks),
``polled`` (the rule for what is polled).

Below the CRM packages: they import these modules; nothing here imports a CRM package or a role.
"""

__all__: list[str] = []
