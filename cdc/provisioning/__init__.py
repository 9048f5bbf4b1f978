"""`cdc provision`: create, idempotently, what a sync configuration needs in both CRMs: custom HubSpot
properties and sync flags, the app's webhook subscriptions, and (with ``--dataverse``) change tracking on
the polled Dataverse tables and custom Dataverse columns. ``needs`` computes the set (pure) of ``specs``;
``hubspot`` and ``dataverse`` compare and create; ``run`` ties them together; ``report`` is what a run
says."""

from cdc.provisioning.needs import Needs, needs_of
from cdc.provisioning.report import Item, ProvisionReport, Section
from cdc.provisioning.run import ProvisionError, enable_change_tracking, provision, provision_sandbox
from cdc.provisioning.specs import ColumnSpec, PropertySpec, SubscriptionSpec

__all__ = [
    "ColumnSpec",
    "Item",
    "Needs",
    "PropertySpec",
    "ProvisionError",
    "ProvisionReport",
    "Section",
    "SubscriptionSpec",
    "enable_change_tracking",
    "needs_of",
    "provision",
    "provision_sandbox",
]
