"""The demo's data: a few hundred companies, contacts and opportunities, some of them on both sides.

The records are made up deterministically (one seeded random generator), so two runs show the same names.
About 30% of the Dataverse accounts and contacts already exist in HubSpot under the same name or email,
written differently (case, spacing), so the first sync *matches* them into one pair instead of creating a
duplicate; the rest are created on the other side. Seeding goes through the sandboxes' bulk admin endpoints
(HubSpot's ``/_admin/seed`` sends no webhook): the records then enter the pipeline the way a real
installation's history does, through the HubSpot reconciler's first pass and the Dataverse poller's
initial change-tracking read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["CITIES", "FIRST_NAMES", "JOBS", "SeedPlan", "Seeded", "plan_seed", "post_seed"]

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie",
    "Margaret", "John", "Katherine", "Dennis", "Hedy", "Tim", "Shafi", "Niklaus", "Sophie", "Guido",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
    "Lamport", "Hamilton", "Backus", "Johnson", "Ritchie", "Lamarr", "Berners-Lee", "Goldwasser",
    "Wirth", "Wilson", "van Rossum",
)  # fmt: skip
CITIES = (
    "London", "Paris", "Berlin", "Madrid", "Lisbon", "Dublin", "Oslo", "Vienna", "Prague", "Warsaw",
    "Rome", "Athens", "Zurich", "Brussels", "Amsterdam", "Copenhagen", "Helsinki", "Tallinn",
)  # fmt: skip
JOBS = ("CTO", "Engineer", "Buyer", "CFO", "Analyst", "Designer", "Head of Sales", "Architect")
STEMS = (
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware", "Proseware", "Adatum",
    "Lucerne", "Margie", "Trey", "Woodgrove", "Alpine", "Coho", "Humongous",
)  # fmt: skip
TRADES = (
    "Analytics", "Robotics", "Foods", "Logistics", "Travel", "Energy", "Media", "Health", "Optics",
    "Textiles", "Motors", "Software", "Insurance", "Labs", "Ventures",
)  # fmt: skip


@dataclass(frozen=True)
class SeedPlan:
    """What is seeded where, and how many linked pairs the backfill should end with."""

    hubspot: dict[str, list[dict[str, Any]]]
    """HubSpot object type -> properties of each record."""
    accounts: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    opportunities: list[dict[str, Any]]
    """Dataverse rows; an opportunity's ``account`` is the index of its account in ``accounts``."""
    expected_links: dict[str, int]
    """HubSpot object label (company, contact, deal) -> pairs expected once the backfill is done."""

    @property
    def expected_total(self) -> int:
        return sum(self.expected_links.values())


@dataclass
class Seeded:
    """The ids the sandboxes gave the seeded records."""

    hubspot: dict[str, list[str]] = field(default_factory=dict)
    dataverse: dict[str, list[str]] = field(default_factory=dict)


def _scramble(text: str, rng: random.Random) -> str:
    """The same match key, written as another person would type it (case only: see the note in
    `plan_seed`)."""
    return rng.choice((text.upper(), text.lower(), text.swapcase()))


def plan_seed(
    companies: int, contacts: int, dv_accounts: int, dv_contacts: int, opportunities: int
) -> SeedPlan:
    """The demo's records: ``companies`` and ``contacts`` in HubSpot, the rest in Dataverse; 30% of the
    Dataverse accounts and contacts already exist in HubSpot (matched by name or email, not duplicated)."""
    rng = random.Random(7)  # noqa: S311 -- demo data, not secrets
    names = [f"{stem} {trade}" for stem in STEMS for trade in TRADES]
    rng.shuffle(names)
    overlap_accounts = min(companies, dv_accounts * 3 // 10)
    overlap_contacts = min(contacts, dv_contacts * 3 // 10)
    if companies + dv_accounts - overlap_accounts > len(names):
        raise ValueError(f"at most {len(names)} distinct company names")

    def person(n: int, domain: str) -> dict[str, Any]:
        first, last = FIRST_NAMES[n % len(FIRST_NAMES)], LAST_NAMES[(n * 7 + 3) % len(LAST_NAMES)]
        local = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
        return {"first": first, "last": last, "email": f"{local}{n}@{domain}"}

    hs_companies = [
        {
            "name": names[n],
            "domain": names[n].lower().replace(" ", "") + ".example.com",
            "city": rng.choice(CITIES),
            "phone": f"+44 20 7946 {n:04d}",
            "sync_to_d365": "true",
        }
        for n in range(companies)
    ]
    people = [person(n, "example.com") for n in range(contacts)]
    hs_contacts = [
        {
            "email": p["email"],
            "firstname": p["first"],
            "lastname": p["last"],
            "city": rng.choice(CITIES),
            "jobtitle": rng.choice(JOBS),
            "sync_to_d365": "true",
        }
        for p in people
    ]
    # Dataverse: the first 30% are HubSpot's records typed differently; the rest are new.
    account_names = [_scramble(names[n], rng) for n in range(overlap_accounts)]
    account_names += [names[companies + n] for n in range(dv_accounts - overlap_accounts)]
    accounts = [
        {"name": name, "address1_city": rng.choice(CITIES), "telephone1": f"+33 1 70 36 {n:04d}"}
        | {"cdc_synctohubspot": True}
        for n, name in enumerate(account_names)
    ]
    dv_people = [people[n] for n in range(overlap_contacts)]
    dv_people += [person(contacts + n, "example.org") for n in range(dv_contacts - overlap_contacts)]
    contact_rows = [
        {
            "emailaddress1": p["email"].upper() if n % 2 else p["email"].capitalize(),
            "firstname": p["first"],
            "lastname": p["last"],
            "address1_city": rng.choice(CITIES),
            "telephone1": f"+49 30 1234 {n:04d}",
            "cdc_synctohubspot": True,
        }
        for n, p in enumerate(dv_people)
    ]
    opportunity_rows = [
        {
            "name": f"{rng.choice(TRADES)} deal {n + 1:03d}",
            "estimatedvalue": float(rng.randrange(5, 250) * 1000),
            "statuscode": 1,
            "account": n % max(1, dv_accounts),
            "cdc_synctohubspot": True,
        }
        for n in range(opportunities)
    ]
    return SeedPlan(
        hubspot={"companies": hs_companies, "contacts": hs_contacts},
        accounts=accounts,
        contacts=contact_rows,
        opportunities=opportunity_rows,
        expected_links={
            "company": companies + dv_accounts - overlap_accounts,
            "contact": contacts + dv_contacts - overlap_contacts,
            "deal": opportunities,
        },
    )


async def post_seed(plan: SeedPlan, hubspot: httpx.AsyncClient, dataverse: httpx.AsyncClient) -> Seeded:
    """Create the planned records through the bulk admin endpoints (one call per object type)."""
    seeded = Seeded()
    answer = await hubspot.post("/_admin/seed", json=plan.hubspot)
    answer.raise_for_status()
    seeded.hubspot = {k: [str(i) for i in v] for k, v in answer.json().items()}

    async def rows(table: str, items: list[dict[str, Any]]) -> list[str]:
        if not items:
            return []
        created = await dataverse.post(f"/_admin/tables/{table}/rows", json={"rows": items})
        created.raise_for_status()
        return [str(row[f"{table}id"]) for row in created.json()["value"]]

    seeded.dataverse["account"] = await rows("account", plan.accounts)
    seeded.dataverse["contact"] = await rows("contact", plan.contacts)
    accounts = seeded.dataverse["account"]
    opportunities = [
        {k: v for k, v in row.items() if k != "account"}
        | ({"parentaccountid@odata.bind": f"/accounts({accounts[row['account']]})"} if accounts else {})
        for row in plan.opportunities
    ]
    seeded.dataverse["opportunity"] = await rows("opportunity", opportunities)
    return seeded
