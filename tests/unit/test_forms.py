"""Form submissions: which are the contact's, which are new, and the row each becomes (`consumers.forms`);
and the optional ``form_submissions`` section of the sync configuration."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.dataverse.form_table import form_columns
from cdc.hubspot.project import required_scopes
from cdc.provisioning.needs import needs_of
from consumers.forms import (
    DEFAULT_TABLE,
    FormSubmissions,
    Submission,
    conversion_changed,
    of_contact,
    parse_submission,
    pending,
    row,
    submission_key,
)
from consumers.loader import ConfigError, default_config, validate_config

FORM = "b4f1e7a2-0c3d-4e5f-8a9b-1c2d3e4f5a6b"
CONFIG = FormSubmissions(fields={"company": "cdc_companyname", "message": "cdc_message"})


def submitted(at: int, email: str = "ana@example.com", form: str = FORM, **values: str) -> Submission:
    return Submission(form_id=form, submitted_at=at, values=(("email", email), *values.items()))


def test_the_default_configuration_has_no_form_submissions() -> None:
    assert default_config().form_submissions is None


def test_a_section_with_only_its_name_takes_every_form_into_the_provisioned_table() -> None:
    config = validate_config({**default_config().model_dump(mode="json"), "form_submissions": {}}, source="s")
    section = config.form_submissions
    assert section is not None
    assert section.table == DEFAULT_TABLE
    assert section.wants("any-form-id")


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"forms": []}, "name at least one form id"),
        ({"fields": {"email": "cdc_submissionkey"}}, "cdc_submissionkey is filled by the daemon"),
        ({"fields": {"a": "cdc_x", "b": "cdc_x"}}, "repeated: cdc_x"),
        ({"fields": {"a": "Bad Column"}}, "lower-case logical names"),
        ({"table": "Form Submissions"}, "table"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_bad_section_is_refused_saying_what_is_wrong(section: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        validate_config({**default_config().model_dump(mode="json"), "form_submissions": section}, source="s")


def test_only_the_named_forms_are_wanted() -> None:
    section = FormSubmissions(forms=(FORM,))
    assert section.wants(FORM)
    assert not section.wants("other")


def test_a_submission_is_parsed_from_the_apis_shape() -> None:
    raw = {
        "conversionId": "c-1",
        "submittedAt": 1_700_000_000_123,
        "values": [{"name": "email", "value": "ana@example.com"}, {"name": "n", "value": None}],
        "pageUrl": "https://example.com/signup",
    }
    parsed = parse_submission(FORM, raw)
    assert parsed == Submission(
        FORM,
        1_700_000_000_123,
        (("email", "ana@example.com"), ("n", "")),
        "https://example.com/signup",
        "c-1",
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ([], "a submission is an object"),
        ({"values": []}, "submittedAt must be epoch milliseconds"),
        ({"submittedAt": "2024-01-01"}, "submittedAt"),
        ({"submittedAt": 1, "values": [{"value": "x"}]}, r"values must be a list of \{name, value\}"),
    ],
)
def test_a_malformed_submission_says_what_is_wrong(raw: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_submission(FORM, raw)


def test_a_conversion_property_change_triggers_and_others_do_not() -> None:
    assert conversion_changed(["firstname", "recent_conversion_date"])
    assert conversion_changed({"num_conversion_events"})
    assert not conversion_changed(["firstname", "lastmodifieddate"])


def test_submissions_are_the_contacts_by_email_case_and_blanks_aside() -> None:
    mine, theirs = submitted(1, " Ana@Example.com "), submitted(2, "bo@example.com")
    assert of_contact([mine, theirs], "ana@example.com") == (mine,)
    assert of_contact([mine, theirs], None) == ()
    assert of_contact([submitted(3, "")], "") == ()


def test_the_row_carries_form_page_time_key_customer_and_mapped_values() -> None:
    sub = Submission(FORM, 1_711_712_000_000, (("email", "a@x.io"), ("company", "TopLine")), "https://x.io/p")
    body = row(
        sub, form_name="Sign-Up Form", contact_id="901", customer=("contact", "/contacts(abc)"), config=CONFIG
    )
    assert body == {
        "cdc_name": "Sign-Up Form",
        "cdc_formid": FORM,
        "cdc_formname": "Sign-Up Form",
        "cdc_pageurl": "https://x.io/p",
        "cdc_submittedat": "2024-03-29T11:33:20.000Z",
        "cdc_submissionkey": f"{FORM}:901:1711712000000",
        "cdc_Customer_contact@odata.bind": "/contacts(abc)",
        "cdc_companyname": "TopLine",
    }
    lead = row(sub, form_name="", contact_id="901", customer=("lead", "/leads(d)"), config=CONFIG)
    assert lead["cdc_Customer_lead@odata.bind"] == "/leads(d)"
    assert lead["cdc_name"] == FORM


subs = st.lists(
    st.builds(
        submitted,
        st.integers(min_value=0, max_value=2_000_000_000_000),
        st.just("ana@example.com"),
        st.sampled_from([FORM, "f2", "f3"]),
    ),
    max_size=30,
)


@given(subs, st.data())
def test_pending_is_each_unwritten_submission_once_whatever_was_seen(
    seen: list[Submission], data: st.DataObject
) -> None:
    keys = {submission_key(s.form_id, "7", s.submitted_at) for s in seen}
    written = data.draw(st.sets(st.sampled_from(sorted(keys))) if keys else st.just(set[str]()))
    first = pending(seen, "7", written)
    got = [submission_key(s.form_id, "7", s.submitted_at) for s in first]
    assert len(got) == len(set(got))
    assert set(got) == keys - written
    assert [s.submitted_at for s in first] == sorted(s.submitted_at for s in first)
    # Seen again (a replay, a second replica, a duplicate page) after the rows were written: nothing new.
    assert pending(seen + seen, "7", written | set(got)) == ()


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0), st.text(min_size=1, max_size=12))
def test_the_key_is_deterministic_and_keeps_submissions_apart(form: str, at: int, contact: str) -> None:
    assert submission_key(form, contact, at) == submission_key(form, contact, at)
    assert submission_key(form, contact, at) != submission_key(form, contact, at + 1)


def test_the_section_asks_for_the_forms_scope_and_the_conversion_webhooks() -> None:
    plain = default_config()
    forms = plain.model_copy(update={"form_submissions": FormSubmissions()})
    assert "forms" not in required_scopes(plain, needs_of(plain))
    assert "forms" in required_scopes(forms, needs_of(forms))
    subscribed = {s.property_name for s in needs_of(forms).subscriptions if s.object == "contact"}
    assert {"num_conversion_events", "recent_conversion_date", "first_conversion_date"} <= subscribed


def test_the_provisioned_table_has_the_keyed_submission_key_and_the_mapped_columns() -> None:
    columns = {c.name: c for c in form_columns(CONFIG)}
    assert columns["cdc_submissionkey"].alternate_key
    assert {"cdc_formid", "cdc_formname", "cdc_pageurl", "cdc_submittedat", "cdc_companyname"} <= set(columns)
    assert columns["cdc_submittedat"].kind == "DateTime"
