"""HubSpot form submissions -> a Dataverse table (the seeds' "Form Submissions to Dynamics 365 Marketing
Events"): the configuration section and the pure decisions; the reads and writes are `cdc`'s.

What HubSpot offers, and the harsher readings taken where it is silent:

1. A submission is ``{conversionId?, submittedAt (ms), values: [{name, value}], pageUrl}``, read per form,
   newest first, ``limit`` at most 50 (hs:docs/api-reference/legacy/marketing/forms/v1/
   get-form-integrations-v1-submissions-forms-form_guid). It names no contact: a submission is the
   contact's when its ``email`` value is the contact's email (case and surrounding blanks aside).
2. ``conversionId`` is optional in that schema, so the key of a submission is built from what every one
   has: form id, contact id and ``submittedAt`` (:func:`submission_key`). The target table holds it in a
   column with an alternate key, so writing a row is an upsert by key: a replay, a second replica or a
   retry after a crash finds the row instead of adding one.
3. A submission changes the contact's conversion properties (:data:`CONVERSION_PROPERTIES`, the seeds'
   "Number of Form Submissions", "Recent Conversion (Date)", ...: ``reference/default_mappings.md``
   rows 16, 17, 51, 54, 60, 61), and such a change is what makes the sync read the contact's submissions.

Order of one contact's pass (`cdc` runs it; each step below is a function here):
:func:`conversion_changed` -> read the wanted forms' submissions (:meth:`FormSubmissions.wants`) ->
:func:`of_contact` -> :func:`pending` (not yet in the table) -> :func:`row` for each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CONVERSION_PROPERTIES",
    "DEFAULT_TABLE",
    "FormColumns",
    "FormSubmissions",
    "Submission",
    "conversion_changed",
    "of_contact",
    "parse_submission",
    "pending",
    "row",
    "submission_key",
]

DEFAULT_TABLE = "cdc_formsubmission"
CONVERSION_PROPERTIES = frozenset(
    {
        "num_conversion_events",
        "num_unique_conversion_events",
        "recent_conversion_date",
        "recent_conversion_event_name",
        "first_conversion_date",
        "first_conversion_event_name",
    }
)
"""Contact properties HubSpot updates when the contact submits a form (module docstring, 3)."""
EMAIL_FIELD = "email"
NAME_LENGTH = 100
"""The primary name column's length as `cdc provision` makes it: longer names are cut, not refused."""
_COLUMN = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FormColumns(_Model):
    """The target table's columns (logical names) the daemon fills on every row."""

    name: str = Field(default="cdc_name", pattern=_COLUMN)
    form_id: str = Field(default="cdc_formid", pattern=_COLUMN)
    form_name: str = Field(default="cdc_formname", pattern=_COLUMN)
    page_url: str = Field(default="cdc_pageurl", pattern=_COLUMN)
    submitted_at: str = Field(default="cdc_submittedat", pattern=_COLUMN)
    key: str = Field(default="cdc_submissionkey", pattern=_COLUMN)
    """Holds :func:`submission_key`; the table's alternate key is on it."""
    customer: str = Field(default="cdc_Customer", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    """The contact-or-lead lookup's SchemaName: a row binds ``<customer>_<table>@odata.bind``."""


class FormSubmissions(_Model):
    """The optional ``form_submissions`` section: off unless present."""

    forms: Literal["all"] | tuple[str, ...] = Field(
        default="all", description="'all', or the form ids (GUIDs) whose submissions are written."
    )
    table: str = Field(default=DEFAULT_TABLE, pattern=_COLUMN, description="Target table (logical name).")
    columns: FormColumns = FormColumns()
    fields: dict[str, str] = Field(
        default_factory=dict, description="Submitted field name -> column of the target table."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.forms != "all" and not self.forms:
            raise ValueError("form_submissions.forms: name at least one form id, or say 'all'")
        fixed = set(self.columns.model_dump().values())
        taken = sorted(set(self.fields.values()) & fixed)
        if taken:
            raise ValueError(f"form_submissions.fields: {', '.join(taken)} is filled by the daemon")
        bad = sorted(c for c in self.fields.values() if not c or not c.replace("_", "").isalnum())
        if bad or any(c != c.lower() for c in self.fields.values()):
            raise ValueError(f"form_submissions.fields: columns are lower-case logical names: {bad}")
        targets = list(self.fields.values())
        twice = sorted({c for c in targets if targets.count(c) > 1})
        if twice:
            raise ValueError(f"form_submissions.fields: each column once; repeated: {', '.join(twice)}")
        return self

    def wants(self, form_id: str) -> bool:
        return self.forms == "all" or form_id in self.forms


@dataclass(frozen=True)
class Submission:
    """One submission of one form, as the submissions API answers it."""

    form_id: str
    submitted_at: int
    """Milliseconds since the epoch."""
    values: tuple[tuple[str, str], ...]
    page_url: str = ""
    conversion_id: str | None = None

    def value(self, name: str) -> str | None:
        return next((v for n, v in self.values if n == name), None)


def parse_submission(form_id: str, raw: Any) -> Submission:
    """One item of a submissions page; ValueError saying what is wrong with it."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"form {form_id}: a submission is an object, not {type(raw).__name__}")
    at = raw.get("submittedAt")
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise ValueError(f"form {form_id}: submittedAt must be epoch milliseconds, not {at!r}")
    values = raw.get("values") or []
    if not isinstance(values, list) or not all(
        isinstance(v, Mapping) and isinstance(v.get("name"), str) for v in values
    ):
        raise ValueError(f"form {form_id}: values must be a list of {{name, value}}")
    conversion = raw.get("conversionId")
    return Submission(
        form_id=form_id,
        submitted_at=at,
        values=tuple((v["name"], "" if v.get("value") is None else str(v["value"])) for v in values),
        page_url=str(raw.get("pageUrl") or ""),
        conversion_id=conversion if isinstance(conversion, str) and conversion else None,
    )


def conversion_changed(changed: Iterable[str]) -> bool:
    """Whether a contact change names a conversion property (a form was submitted)."""
    return not CONVERSION_PROPERTIES.isdisjoint(changed)


def submission_key(form_id: str, contact_id: str, submitted_at: int) -> str:
    """The submission's identity in the target table (module docstring, 2)."""
    return f"{form_id}:{contact_id}:{submitted_at}"


def of_contact(submissions: Iterable[Submission], email: str | None) -> tuple[Submission, ...]:
    """The submissions whose ``email`` value is the contact's (none for a contact without email)."""
    wanted = (email or "").strip().lower()
    if not wanted:
        return ()
    return tuple(s for s in submissions if (s.value(EMAIL_FIELD) or "").strip().lower() == wanted)


def pending(
    submissions: Iterable[Submission], contact_id: str, written: Iterable[str]
) -> tuple[Submission, ...]:
    """The contact's submissions not yet in the table (by key), each once, oldest first."""
    seen = set(written)
    out: list[Submission] = []
    for s in sorted(submissions, key=lambda s: (s.submitted_at, s.form_id)):
        key = submission_key(s.form_id, contact_id, s.submitted_at)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return tuple(out)


def row(
    submission: Submission,
    *,
    form_name: str,
    contact_id: str,
    customer: tuple[Literal["contact", "lead"], str],
    config: FormSubmissions,
) -> dict[str, Any]:
    """The target row of a submission, related to the linked Dataverse ``customer`` (table, reference such
    as ``/contacts(<id>)``). Mapped fields the submission lacks are left out, not cleared."""
    cols = config.columns
    table, reference = customer
    at = datetime.fromtimestamp(submission.submitted_at / 1000, UTC)
    body: dict[str, Any] = {
        cols.name: (form_name or submission.form_id)[:NAME_LENGTH],
        cols.form_id: submission.form_id,
        cols.form_name: form_name,
        cols.page_url: submission.page_url,
        cols.submitted_at: at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        cols.key: submission_key(submission.form_id, contact_id, submission.submitted_at),
        f"{cols.customer}_{table}@odata.bind": reference,
    }
    for field, column in sorted(config.fields.items()):
        value = submission.value(field)
        if value is not None:
            body[column] = value
    return body


def keys_of(rows: Sequence[Mapping[str, Any]], config: FormSubmissions) -> set[str]:
    """The submission keys of rows read back from the table."""
    return {str(r[config.columns.key]) for r in rows if r.get(config.columns.key)}
