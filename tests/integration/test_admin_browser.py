"""The admin page in a real browser: Debian's Chromium, driven by Selenium through /usr/bin/chromedriver,
against the whole pipeline (sandbox CRMs, real Kafka, `cdc sync`) and the page served on a real socket.

What an admin does: a wrong password is refused; logged in, the overview shows the steps; after an edit in
HubSpot synced, the record's story (found by its email) shows both records and the write; "Sync now" reads
it again and the story shows that resync, done by the user; "Push from HubSpot" shows what the pass wrote.
Then an excluded record (issue 18's walk): a HubSpot contact whose email two Dataverse contacts share is
refused (an ambiguous match, as in test_sync_exclusions.py); the admin finds it on the Excluded view, deletes
one duplicate in the sandbox (as a user fixing the data), presses Retry, and sees it synced: its story shows
the write and it has left the Excluded list. Last, pause: the admin pauses everything on the Paused view,
every page shows the banner, an edit in HubSpot is not written for five seconds; after Resume it is.
Screenshots of the main views go to a tmp dir (and to ``ADMIN_SCREENSHOTS``, when set: how
docs/screenshots/ was made). No credential of the settings appears in any page. Skipped, with the reason,
only where no Chromium or chromedriver is installed (`scripts/bootstrap.sh` installs both).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdc.admin import create_app, hash_password
from cdc.admin.kafka_source import KafkaHealth
from cdc.metrics import Metrics
from cdc.ops._kafka import start_client
from cdc.serving import serve
from cdc.settings import AdminSettings, Settings
from cdc.sources.publisher import ChangePublisher
from streams.clients import make_producer
from tests.integration.sync_stack import Stack, eventually, running_stack
from tests.integration.test_sync_exclusions import one_way_contacts

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "a long enough admin password"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""What Chromium needs to start on a machine with a closed network (polyglot.md): without the
background-networking flags its connections to Google's hosts are refused, many at a time."""

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        f"no Chromium here ({CHROMIUM} and {CHROMEDRIVER} are Debian's chromium and chromium-driver; "
        "scripts/bootstrap.sh installs them)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 -- only where a browser is installed
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="cdc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def secrets_of(settings: Settings) -> list[str]:
    found = [
        secret.get_secret_value()
        for secret in (
            settings.hubspot.token,
            settings.hubspot.client_secret,
            settings.hubspot.auth.refresh_token,
            settings.dataverse.client_secret,
        )
        if secret is not None and secret.get_secret_value()
    ]
    assert found, "the stack's settings hold secrets to look for"
    return found


def _gone(element: WebElement) -> bool:
    """Whether the page holding ``element`` was replaced. Selenium's ``staleness_of`` knows one answer for
    it; chromedriver gives another while the next page is loading ("Node with given id does not belong to
    the document": CI, 2026-12-07)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error.msg):
            return True
        raise
    return False


class Pages:
    """The browser's steps, each run in a worker thread (Selenium blocks; the pipeline runs on this loop)."""

    def __init__(self, driver: webdriver.Chrome, base: str, shots: list[Path], secrets: list[str]) -> None:
        self.driver, self.base, self.shots, self.secrets = driver, base, shots, secrets

    async def run(self, step: Any, *args: Any) -> Any:
        return await asyncio.to_thread(step, *args)

    def open(self, path: str) -> str:
        self.driver.get(self.base + path)
        source = self.driver.page_source
        for secret in self.secrets:
            assert secret not in source, f"a credential of the settings shows on {path}"
        return source

    def press(self, button: WebElement) -> str:
        """Click, and wait for the next page to replace this one."""
        button.click()
        WebDriverWait(self.driver, 30).until(lambda _: _gone(button))
        source = self.driver.page_source
        for secret in self.secrets:
            assert secret not in source, "a credential of the settings shows after a click"
        return source

    def log_in(self, password: str) -> str:
        self.open("/login")
        self.driver.find_element(By.ID, "user").send_keys("ada")
        self.driver.find_element(By.ID, "password").send_keys(password)
        return self.press(self.driver.find_element(By.CSS_SELECTOR, "form.login button"))

    def find_story(self, email: str) -> str:
        self.open("/")
        self.driver.find_element(By.NAME, "q").send_keys(email)
        return self.press(self.driver.find_element(By.CSS_SELECTOR, "form.search button"))

    def sync_now(self, system: str) -> str:
        for item in self.driver.find_elements(By.CSS_SELECTOR, "ul.records li"):
            if item.text.startswith(system):
                return self.press(item.find_element(By.TAG_NAME, "button"))
        raise AssertionError(f"no {system} record with a Sync now button on the story")

    def push(self, winner: str) -> str:
        return self.press(self.driver.find_element(By.CSS_SELECTOR, f'form.push button[value="{winner}"]'))

    def retry(self, record_id: str) -> str:
        """Press Retry on the Excluded view's row of ``record_id``."""
        for row in self.driver.find_elements(By.CSS_SELECTOR, "table.excluded tbody tr"):
            if f"contact {record_id}" in row.text:
                return self.press(row.find_element(By.TAG_NAME, "button"))
        raise AssertionError(f"no excluded row for {record_id} with a Retry button")

    def toggle_everything(self, reason: str = "") -> str:
        """Press Pause (with ``reason``) or Resume on the Paused view's "Everything" row."""
        self.open("/paused")
        row = self.driver.find_element(By.CSS_SELECTOR, "table.pauses tbody tr")
        assert row.text.startswith("Everything"), row.text
        if reason:
            row.find_element(By.NAME, "reason").send_keys(reason)
        return self.press(row.find_element(By.TAG_NAME, "button"))

    def shoot(self, name: str, *, width: int = 1280) -> None:
        self.driver.set_window_size(width, 900)
        for folder in self.shots:
            folder.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(folder / f"{name}.png"))
        self.driver.set_window_size(1280, 900)


async def test_an_admin_logs_in_finds_a_story_and_syncs_a_record_now(
    kafka_settings: Any, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    async with running_stack(kafka_settings, one_way_contacts()) as stack:
        publisher = ChangePublisher(stack.settings.kafka, Metrics(CollectorRegistry()), deadline_s=30.0)
        await publisher.start()
        producer = make_producer(stack.settings.kafka, linger_ms=0)
        await start_client(producer, stack.settings.kafka)
        try:
            source = KafkaHealth(stack.settings, stack.config, publisher, producer)
            app = create_app(
                AdminSettings(secure_cookies=False),
                source,
                users={"ada": hash_password(PASSWORD)},
                secret="s" * 40,
            )
            async with serve(app, host="127.0.0.1", port=0, name="admin") as served:
                await _walk(stack, served.base_url, browser, tmp_path)
        finally:
            await producer.stop()
            await publisher.stop()


async def _walk(stack: Stack, base: str, browser: webdriver.Chrome, tmp_path: Path) -> None:
    shots = [
        tmp_path / "screenshots",
        *([Path(os.environ["ADMIN_SCREENSHOTS"])] if "ADMIN_SCREENSHOTS" in os.environ else []),
    ]
    pages = Pages(browser, base, shots, secrets_of(stack.settings))

    refused = await pages.run(pages.log_in, "not the password")
    assert "Wrong user name or password" in refused
    await pages.run(pages.shoot, "login")
    overview = await pages.run(pages.log_in, PASSWORD)
    assert "Sync health" in overview
    assert "Per sync step" in overview

    grace = await stack.hs_create(
        "contacts", {"email": "grace@example.com", "firstname": "Grace", "lastname": "Hopper"}
    )

    async def synced() -> str | None:
        story = await pages.run(pages.find_story, "grace@example.com")
        return story if "dataverse contact" in story and "Hopper" in story else None

    story = await eventually(synced, within=60, what="the contact's story with its write to Dataverse")
    assert "hubspot contact" in story
    await pages.run(pages.shoot, "story")

    after = await pages.run(pages.sync_now, "hubspot")
    assert "read again and sent to the sync" in after

    async def resynced() -> str | None:
        story = await pages.run(pages.find_story, "grace@example.com")
        return story if 'resync <span class="who">by ada</span>' in story else None

    await eventually(resynced, within=30, what="the sync-now in the record's story, by its user")
    await pages.run(pages.shoot, "story-after-sync-now")
    pushed = await pages.run(pages.push, "hubspot")
    assert "pushed from hubspot contacts: 1 record(s)" in pushed
    assert "nothing to write: the other side already holds these values" in pushed
    await _excluded_walk(stack, pages)
    await _pause_walk(stack, pages, grace)

    for path, name in [("/", "overview"), ("/records", "records"), ("/deadletters", "deadletters"),
                       ("/lag", "lag"), ("/budget", "budget")]:  # fmt: skip
        text = await pages.run(pages.open, path)
        assert "Log out" in text, path
        await pages.run(pages.shoot, name)
    await pages.run(pages.open, "/")
    await pages.run(lambda: pages.shoot("overview-phone", width=390))
    assert "<svg" in await pages.run(pages.open, "/budget")


async def _excluded_walk(stack: Stack, pages: Pages) -> None:
    email = "dup@example.com"
    first = await stack.dv_create("contact", {"emailaddress1": email, "lastname": "One"})
    await stack.dv_create("contact", {"emailaddress1": email.upper(), "lastname": "Two"})
    hs_id = await stack.hs_create("contacts", {"email": email, "firstname": "Dana", "lastname": "Dup"})

    async def listed() -> str | None:
        page = await pages.run(pages.open, "/excluded")
        return page if f"contact {hs_id}" in page else None

    page = await eventually(listed, within=60, what="the contact on the Excluded view")
    assert "ambiguous_match" in page
    assert "2 candidates with this match key" in page
    await pages.run(pages.shoot, "excluded")
    overview = await pages.run(pages.open, "/")
    assert '<a class="bad" href="/excluded?step=contacts_to_contacts">1</a>' in overview
    filtered = await pages.run(pages.open, "/excluded?reason=ambiguous_match&q=dup%40")
    assert f"contact {hs_id}" in filtered
    story = await pages.run(pages.find_story, hs_id)
    assert "is excluded from contacts_to_contacts" in story
    await pages.run(pages.shoot, "story-excluded")

    # The admin fixes the data (one duplicate deleted in Dataverse), then retries the record.
    await stack.dv_delete("contact", first)
    await pages.run(pages.open, "/excluded?reason=ambiguous_match")
    after = await pages.run(pages.retry, hs_id)
    assert "1 excluded record(s) read again and sent to the sync" in after

    async def synced() -> str | None:
        story = await pages.run(pages.find_story, hs_id)
        done = "dataverse contact" in story and "Dana" in story and "is excluded from" not in story
        return story if done else None

    story = await eventually(synced, within=60, what="the retried contact's write in its story")
    assert 'resync <span class="who">by ada</span>' in story
    await pages.run(pages.shoot, "story-after-retry")
    gone = await pages.run(pages.open, "/excluded")
    assert f"contact {hs_id}" not in gone
    assert "No excluded records" in gone
    await pages.run(pages.shoot, "excluded-empty")


async def _pause_walk(stack: Stack, pages: Pages, hs_id: str) -> None:
    async def lastname() -> str | None:
        rows = [r for r in await stack.dv_all("contact") if r.get("emailaddress1") == "grace@example.com"]
        return rows[0].get("lastname") if len(rows) == 1 else None

    assert await lastname() == "Hopper"
    paused = await pages.run(pages.toggle_everything, "a bulk import in HubSpot")
    assert "paused everything: the sync stops consuming, changes wait in Kafka" in paused
    assert "Paused: everything by ada since" in paused
    assert "a bulk import in HubSpot" in paused
    await pages.run(pages.shoot, "paused")

    # Every replica obeys within a second (README), as `cdc pause`'s test waits too; a batch read while
    # the pause came in is held as well (test_pause_read.py).
    await asyncio.sleep(1.0)
    await stack.hs_update("contacts", hs_id, {"lastname": "Hopper-Paused"})
    await asyncio.sleep(5.0)
    assert await lastname() == "Hopper", "a change was written while everything was paused"
    overview = await pages.run(pages.open, "/")
    assert "Paused: everything by ada since" in overview
    await pages.run(pages.shoot, "overview-paused")

    resumed = await pages.run(pages.toggle_everything)
    assert "resumed everything" in resumed
    assert "Paused:" not in resumed

    async def written() -> str | None:
        return "yes" if await lastname() == "Hopper-Paused" else None

    await eventually(written, within=60, what="the edit made while paused, written once resumed")
