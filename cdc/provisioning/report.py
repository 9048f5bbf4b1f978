"""What a provisioning run found and did, per area (HubSpot properties, webhook subscriptions, Dataverse
columns, the Dataverse application user's privileges): created, present, missing (needed but not created:
a dry run, Dataverse without ``--dataverse``, or a privilege the app user lacks, which only a Dataverse
admin can grant), pending (made, but not usable until the CRM finishes it: a Dataverse alternate key whose
index is still being built; nothing to do but wait), elsewhere (needed, but made where no API of ours can
reach: the webhook subscriptions of a project app live in its project files; listed for the person who
uploads them) and problems (present but wrong, refused, failed, or not checkable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Item", "ProvisionReport", "Section"]


@dataclass(frozen=True)
class Item:
    """One thing provisioning looks after. ``kind``: ``property``, ``group``, ``subscription``, ``column``,
    ``table``, ``key``, ``privilege``, or ``setting`` (a problem with the settings); ``type`` the CRM's type;
    ``detail`` a problem's why (for a privilege: what needs it)."""

    kind: str
    object: str
    name: str
    type: str = ""
    detail: str = ""

    def __str__(self) -> str:
        typed = f" ({self.type})" if self.type else ""
        why = f": {self.detail}" if self.detail else ""
        return f"{self.kind} {self.object}.{self.name}{typed}{why}"

    def as_json(self) -> dict[str, str]:
        body = {"kind": self.kind, "object": self.object, "name": self.name}
        if self.type:
            body["type"] = self.type
        if self.detail:
            body["detail"] = self.detail
        return body


@dataclass
class Section:
    created: list[Item] = field(default_factory=list)
    present: list[Item] = field(default_factory=list)
    missing: list[Item] = field(default_factory=list)
    problems: list[Item] = field(default_factory=list)
    pending: list[Item] = field(default_factory=list)
    elsewhere: list[Item] = field(default_factory=list)

    def as_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            "created": [i.as_json() for i in self.created],
            "present": [i.as_json() for i in self.present],
            "missing": [i.as_json() for i in self.missing],
            "pending": [i.as_json() for i in self.pending],
            "problems": [i.as_json() for i in self.problems],
            "elsewhere": [i.as_json() for i in self.elsewhere],
        }


@dataclass
class ProvisionReport:
    dry_run: bool = False
    hubspot: Section = field(default_factory=Section)
    webhooks: Section = field(default_factory=Section)
    journal: Section = field(default_factory=Section)
    """The Webhooks Journal's subscriptions (`cdc.hubspot.journal_subscriptions`), when the journal is on."""
    dataverse: Section = field(default_factory=Section)
    privileges: Section = field(default_factory=Section)

    @property
    def sections(self) -> dict[str, Section]:
        return {
            "hubspot": self.hubspot,
            "webhooks": self.webhooks,
            "journal": self.journal,
            "dataverse": self.dataverse,
            "privileges": self.privileges,
        }

    def count(self, what: str, *, privileges: bool = True) -> int:
        """Items in state ``what`` over the sections (the privileges' too unless ``privileges`` is false)."""
        return sum(
            len(getattr(section, what))
            for name, section in self.sections.items()
            if privileges or name != "privileges"
        )

    @property
    def ok(self) -> bool:
        """Nothing is missing and nothing is wrong: the CRMs have, or are finishing (pending), what the
        configuration needs, and the application user holds the privileges it needs."""
        return self.count("missing") == 0 and self.count("problems") == 0

    def summary(self) -> str:
        """``created 3, present 80, problems 0; privileges held 13, missing 1``: the things provisioning
        makes, then the privileges (only a Dataverse admin grants those)."""
        verb = "would create" if self.dry_run else "created"
        made = self.count("missing" if self.dry_run else "created", privileges=False)
        parts = [f"{verb} {made}", f"present {self.count('present', privileges=False)}"]
        if not self.dry_run and self.count("missing", privileges=False):
            parts.append(f"missing {self.count('missing', privileges=False)}")
        if self.count("pending"):
            parts.append(f"pending {self.count('pending')}")
        if self.count("elsewhere"):
            parts.append(f"to subscribe in the app {self.count('elsewhere')}")
        parts.append(f"problems {self.count('problems', privileges=False)}")
        granted = self.privileges
        if not (granted.present or granted.missing or granted.problems):
            return ", ".join(parts)
        rights = [f"held {len(granted.present)}", f"missing {len(granted.missing)}"]
        if granted.problems:
            rights.append(f"problems {len(granted.problems)}")
        return f"{', '.join(parts)}; privileges {', '.join(rights)}"

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, **{name: s.as_json() for name, s in self.sections.items()}}
