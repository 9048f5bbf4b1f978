"""The Dataverse (Dynamics 365) emulator; see :mod:`cdc.sandbox.dataverse.app`."""

from cdc.sandbox.dataverse.app import DataverseSandbox

__all__ = ["DataverseSandbox"]
