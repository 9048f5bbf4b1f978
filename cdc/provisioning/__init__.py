"""`cdc provision`: create, idempotently, what a sync configuration needs in both CRMs: custom HubSpot
properties and sync flags, the app's webhook subscriptions, and (with ``--dataverse``) change tracking on
the polled Dataverse tables and custom Dataverse columns.

``needs`` computes the set (pure) of ``specs``; ``report`` is what a run says; ``run`` ties them together
with each CRM's part, which compares and creates: `cdc.hubspot.provisioning`, `cdc.dataverse.provisioning`
(and `cdc.dataverse.keys`). Those import ``needs``, ``report`` and ``specs``, so this module re-exports
nothing: import from the modules.
"""

__all__: list[str] = []
