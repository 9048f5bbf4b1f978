"""The daemon: settings, command line, lifecycle, the CRM edges, and local development tools."""

__all__: list[str] = []
