"""Table and column definitions: the standard columns of contact, account, lead and opportunity (fact
sheet §3), their choices, lookups and alternate keys, plus custom columns added through the metadata API.

Every standard column the daemon's default configuration reads or writes is here with its Dataverse type
and length (mapping reference ``default_mappings.md``, sources D1-D4) and the standard option values of
section 11.2 (``industrycode``, ``leadsourcecode``, ``leadqualitycode``, ``salesstage``, state and status).
``ownerid`` is an ``Owner`` lookup (``systemuser`` or ``team``, bound as ``ownerid@odata.bind``) and
``campaignid`` a lookup to ``campaign``: those three tables exist, with only their name columns, so binds
resolve and ``_x_value`` lookups carry a formatted value. A Boolean column's ``choices`` are its two labels
(0 = false, 1 = true), e.g. ``donotbulkemail``: Allow / Do Not Allow.

A :class:`Table` is mutable only through :class:`~cdc.sandbox.dataverse.store.Store`, which holds the lock.
Metadata ids are uuid5 of the names, so they are the same in every run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

__all__ = [
    "KEY_STATUSES",
    "READ_ONLY_TYPES",
    "Choice",
    "Column",
    "Key",
    "Table",
    "metadata_id",
    "standard_tables",
]

_NAMESPACE = uuid.UUID("6c1e2f1a-6f55-4f0e-9d51-2d7d3c0b9e10")
READ_ONLY_TYPES = frozenset({"Uniqueidentifier", "BigInt"})


def metadata_id(*names: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(names)))


@dataclass(frozen=True)
class Choice:
    value: int
    label: str
    state: int | None = None  # statuscode options belong to a statecode
    default_status: int | None = None  # statecode options name their default statuscode


@dataclass(frozen=True)
class Column:
    """``kind`` is the metadata ``AttributeType`` (String, Integer, Money, Picklist, Customer, ...)."""

    name: str
    kind: str
    label: str = ""
    max_length: int | None = None
    choices: tuple[Choice, ...] = ()
    targets: tuple[str, ...] = ()  # Lookup / Customer: target table logical names
    date_only: bool = False
    writable: bool = True
    custom: bool = False
    schema_name: str = ""
    """As created (``cdc_Customer``): a multi-table lookup's navigation properties carry it, per target."""

    @property
    def is_lookup(self) -> bool:
        return self.kind in {"Lookup", "Customer", "Owner"}

    @property
    def is_choice(self) -> bool:
        return self.kind in {"Picklist", "State", "Status"}

    @property
    def read_name(self) -> str:
        """How the column appears in rows: lookups as ``_x_value``."""
        return f"_{self.name}_value" if self.is_lookup else self.name

    def choice(self, value: int) -> Choice | None:
        return next((c for c in self.choices if c.value == value), None)


KEY_STATUSES = ("Pending", "InProgress", "Active", "Failed")
"""``EntityKeyIndexStatus`` (Learn, webapi/reference/entitykeyindexstatus: Pending 0, InProgress 1, Active 2,
Failed 3)."""


@dataclass(frozen=True)
class Key:
    """An alternate key; only tables with one accept ``entityset(col='v')`` addressing and upserts, and only
    once its index is built (``status`` Active). ``submitted`` and ``ready_at`` are sandbox clock times of
    the index job (see `Store.settle_keys`); ``failure`` says why a Failed job failed."""

    name: str
    columns: tuple[str, ...]
    status: str = "Active"
    submitted: float = 0.0
    ready_at: float = 0.0
    failure: str = ""

    @property
    def active(self) -> bool:
        return self.status == "Active"


@dataclass
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    object_type_code: int
    columns: dict[str, Column] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)
    change_tracking: bool = False
    """``ChangeTrackingEnabled``: off until enabled through the metadata API, as on a fresh org (CT: a table
    must have it on before changes can be read; it cannot be turned off again)."""
    can_change_tracking: bool = True
    """The managed property ``CanChangeTrackingBeEnabled`` (some tables can never be tracked, CT)."""
    display_name: str | None = None
    """The table's display label (LanguageCode 1033): None is the standard one, "" a label a definition
    update without ``MSCRM.MergeLabels`` dropped."""
    schema_name: str | None = None
    """A custom table's SchemaName (``cdc_FormSubmission``); None: the standard one (``Contact``)."""

    def add(self, column: Column) -> None:
        self.columns[column.name] = column

    def navigation(self) -> dict[str, tuple[Column, tuple[str, ...]]]:
        """``@odata.bind`` names -> (column, tables it may point to): ``parentaccountid`` -> account;
        Customer columns once per target (``parentcustomerid_account``); a multi-table lookup likewise,
        by its SchemaName (``cdc_Customer_lead``; Learn, multitable-lookup); ``ownerid`` -> systemuser or
        team."""
        nav: dict[str, tuple[Column, tuple[str, ...]]] = {}
        for column in self.columns.values():
            if column.kind == "Lookup" and len(column.targets) > 1:
                for target in column.targets:
                    nav[f"{column.schema_name or column.name}_{target}"] = (column, (target,))
            elif column.kind == "Lookup":
                nav[column.name] = (column, column.targets[:1])
            elif column.kind == "Owner":
                nav[column.name] = (column, column.targets)
            elif column.kind == "Customer":
                for target in column.targets:
                    nav[f"{column.name}_{target}"] = (column, (target,))
        return nav

    def by_read_name(self) -> dict[str, Column]:
        return {c.read_name: c for c in self.columns.values()}

    def find_key(self, names: set[str]) -> Key | None:
        """The key on exactly these columns, whatever its index status (callers check `Key.active`)."""
        return next((k for k in self.keys if set(k.columns) == names), None)


def _strings(*names: str, length: int = 100) -> list[Column]:
    return [Column(n, "String", max_length=length) for n in names]


_ADDRESS = [
    *_strings("address1_line1", "address1_line2", "address1_line3", length=250),
    *_strings("address1_city", "address1_country", length=80),
    *_strings("address1_stateorprovince", length=50),
    *_strings("address1_county", length=50),
    *_strings("address1_postalcode", length=20),
]


def _state_status(states: list[tuple[int, str, int]], statuses: list[tuple[int, str, int]]) -> list[Column]:
    return [
        Column("statecode", "State", choices=tuple(Choice(v, lbl, default_status=d) for v, lbl, d in states)),
        Column("statuscode", "Status", choices=tuple(Choice(v, lbl, state=s) for v, lbl, s in statuses)),
    ]


def _system() -> list[Column]:
    return [
        Column("createdon", "DateTime", writable=False),
        Column("modifiedon", "DateTime", writable=False),
        Column("versionnumber", "BigInt", writable=False),
    ]


def _picklist(name: str, *labels: str, start: int = 1, label: str = "") -> Column:
    choices = tuple(Choice(i, lbl) for i, lbl in enumerate(labels, start=start))
    return Column(name, "Picklist", label=label, choices=choices)


def _boolean(name: str, false: str, true: str, label: str = "") -> Column:
    return Column(name, "Boolean", label=label, choices=(Choice(0, false), Choice(1, true)))


_OWNER = Column("ownerid", "Owner", label="Owner", targets=("systemuser", "team"))
_CAMPAIGN = Column("campaignid", "Lookup", label="Source Campaign", targets=("campaign",))
_DO_NOT_BULK_EMAIL = _boolean("donotbulkemail", "Allow", "Do Not Allow", "Do not allow Bulk Emails")
_SALUTATION = Column("salutation", "String", label="Salutation", max_length=100)
_INDUSTRIES = (
    *("Accounting", "Agriculture and Non-petrol Natural Resource Extraction"),
    *("Broadcasting Printing and Publishing", "Brokers", "Building Supply Retail", "Business Services"),
    *("Consulting", "Consumer Services", "Design, Direction and Creative Management"),
    *("Distributors, Dispatchers and Processors", "Doctor's Offices and Clinics", "Durable Manufacturing"),
    *("Eating and Drinking Places", "Entertainment Retail", "Equipment Rental and Leasing", "Financial"),
    *("Food and Tobacco Processing", "Inbound Capital Intensive Processing", "Inbound Repair and Services"),
    *("Insurance", "Legal Services", "Non-Durable Merchandise Retail", "Outbound Consumer Service"),
    *("Petrochemical Extraction and Distribution", "Service Retail", "SIG Affiliations", "Social Services"),
    *("Special Outbound Trade Contractors", "Specialty Realty", "Transportation"),
    *("Utility Creation and Distribution", "Vehicle Retail", "Wholesale"),
)


def _industry() -> Column:
    return _picklist("industrycode", *_INDUSTRIES, label="Industry")


def _table(logical: str, entity_set: str, primary_name: str, code: int, columns: list[Column]) -> Table:
    table = Table(logical, entity_set, f"{logical}id", primary_name, code)
    table.add(Column(table.primary_id, "Uniqueidentifier"))
    for column in columns:
        table.add(column)
    return table


_ACTIVE = [(0, "Active", 1), (1, "Inactive", 2)]
_ACTIVE_STATUS = [(1, "Active", 0), (2, "Inactive", 1)]


def standard_tables() -> dict[str, Table]:
    """A fresh set of the four tables, keyed by logical name."""
    contact = _table(
        "contact",
        "contacts",
        "fullname",
        2,
        [
            Column("fullname", "String", max_length=160, writable=False),
            *_strings("firstname", "lastname", "mobilephone", length=50),
            *_strings("jobtitle", "emailaddress1", "emailaddress2"),
            Column("telephone1", "String", max_length=50),
            _SALUTATION,
            Column("websiteurl", "String", label="Website", max_length=200),
            _DO_NOT_BULK_EMAIL,
            *_ADDRESS,
            Column("description", "Memo", max_length=2000),
            Column("parentcustomerid", "Customer", targets=("account", "contact")),
            _OWNER,
            _picklist("preferredcontactmethodcode", "Any", "Email", "Phone", "Fax", "Mail"),
            Column("birthdate", "DateTime", date_only=True),
            *_state_status(_ACTIVE, _ACTIVE_STATUS),
            *_system(),
        ],
    )
    account = _table(
        "account",
        "accounts",
        "name",
        1,
        [
            Column("name", "String", max_length=160),
            *_strings("accountnumber", "emailaddress1", "fax"),
            Column("telephone1", "String", max_length=50),
            Column("websiteurl", "String", max_length=200),
            *_ADDRESS,
            Column("description", "Memo", max_length=2000),
            Column("numberofemployees", "Integer"),
            Column("revenue", "Money"),
            _picklist(
                "customertypecode",
                *("Competitor", "Consultant", "Customer", "Investor", "Partner", "Influencer", "Press"),
                *("Prospect", "Reseller", "Supplier", "Vendor", "Other"),
            ),
            _picklist("accountcategorycode", "Preferred Customer", "Standard"),
            _industry(),
            _DO_NOT_BULK_EMAIL,
            Column("primarycontactid", "Lookup", targets=("contact",)),
            Column("parentaccountid", "Lookup", targets=("account",)),
            _OWNER,
            *_state_status(_ACTIVE, _ACTIVE_STATUS),
            *_system(),
        ],
    )
    lead = _table(
        "lead",
        "leads",
        "fullname",
        4,
        [
            Column("fullname", "String", max_length=160, writable=False),
            Column("subject", "String", max_length=300),
            *_strings("firstname", "lastname", length=50),
            *_strings("jobtitle", "emailaddress1", "companyname"),
            Column("mobilephone", "String", max_length=20),
            Column("telephone1", "String", max_length=50),
            Column("websiteurl", "String", max_length=200),
            _SALUTATION,
            _DO_NOT_BULK_EMAIL,
            *_ADDRESS,
            Column("description", "Memo", max_length=2000),
            _picklist(
                "leadsourcecode",
                *("Advertisement", "Employee Referral", "External Referral", "Partner", "Public Relations"),
                *("Seminar", "Trade Show", "Web", "Word of Mouth", "Other"),
            ),
            _picklist("leadqualitycode", "Hot", "Warm", "Cold", label="Rating"),
            _industry(),
            _picklist("salesstage", "Qualify", start=0, label="Sales Stage"),
            Column("parentaccountid", "Lookup", targets=("account",)),
            Column("parentcontactid", "Lookup", targets=("contact",)),
            Column("customerid", "Customer", targets=("account", "contact")),
            _CAMPAIGN,
            _OWNER,
            *_state_status(
                [(0, "Open", 1), (1, "Qualified", 3), (2, "Disqualified", 4)],
                [
                    *((1, "New", 0), (2, "Contacted", 0), (3, "Qualified", 1), (4, "Lost", 2)),
                    *((5, "Cannot Contact", 2), (6, "No Longer Interested", 2), (7, "Canceled", 2)),
                ],
            ),
            *_system(),
        ],
    )
    opportunity = _table(
        "opportunity",
        "opportunities",
        "name",
        3,
        [
            Column("name", "String", max_length=300),
            Column("description", "Memo", max_length=2000),
            Column("estimatedvalue", "Money"),
            Column("actualvalue", "Money"),
            Column("estimatedclosedate", "DateTime", date_only=True),
            Column("actualclosedate", "DateTime", date_only=True),
            Column("closeprobability", "Integer"),
            Column("customerid", "Customer", targets=("account", "contact")),
            Column("parentaccountid", "Lookup", targets=("account",)),
            Column("parentcontactid", "Lookup", targets=("contact",)),
            _CAMPAIGN,
            _OWNER,
            *_state_status(
                [(0, "Open", 1), (1, "Won", 3), (2, "Lost", 4)],
                [
                    (1, "In Progress", 0),
                    (2, "On Hold", 0),
                    (3, "Won", 1),
                    (4, "Canceled", 2),
                    (5, "Out-Sold", 2),
                ],
            ),
            *_system(),
        ],
    )
    # What owner and campaign lookups point to, with little more than their names.
    systemuser = _table(
        "systemuser",
        "systemusers",
        "fullname",
        8,
        [
            Column("fullname", "String", max_length=200, writable=False),
            *_strings("firstname", "lastname", length=64),
            Column("internalemailaddress", "String", max_length=100),
            _boolean("isdisabled", "Enabled", "Disabled", label="User Status"),
            *_system(),
        ],
    )
    team = _table("team", "teams", "name", 9, [Column("name", "String", max_length=160), *_system()])
    campaign = _table(
        "campaign", "campaigns", "name", 4400, [Column("name", "String", max_length=128), *_system()]
    )
    tables = (contact, account, lead, opportunity, systemuser, team, campaign)
    return {t.logical_name: t for t in tables}
