"""The multipart/mixed reader and writer of ``$batch`` (pure): parse inverts build, for any parts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.sandbox.dataverse.batch import (
    BatchRequest,
    BatchSyntaxError,
    ChangeSet,
    boundary_of,
    build_request,
    parse_request,
)

SAFE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20
)
BODIES = st.one_of(
    st.just(""), st.builds(lambda s: '{"lastname": "' + s.replace('"', "").replace("\\", "") + '"}', SAFE)
)
REQUESTS = st.builds(
    BatchRequest,
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    url=st.from_regex(r"https://org\.test/api/data/v9\.2/[a-z]{1,10}(\([0-9a-f-]{1,36}\))?", fullmatch=True),
    headers=st.dictionaries(
        st.sampled_from(["accept", "prefer", "if-match"]),
        st.from_regex(r"[A-Za-z0-9=*\"/.-]{1,12}", fullmatch=True),
        max_size=2,
    ),
    body=BODIES,
)
CHANGESETS = st.builds(
    lambda items: ChangeSet(
        [BatchRequest(r.method, r.url, r.headers, r.body, str(i)) for i, r in enumerate(items, 1)]
    ),
    st.lists(REQUESTS, min_size=1, max_size=4),
)


@given(st.lists(st.one_of(REQUESTS, CHANGESETS), max_size=6))
def test_parse_inverts_build(parts: list[BatchRequest | ChangeSet]) -> None:
    body = build_request(parts, "batch_x1")
    assert parse_request(body, "multipart/mixed; boundary=batch_x1") == parts


def test_lf_only_bodies_and_boundary_forms() -> None:
    request = "GET https://org.test/api/data/v9.2/contacts HTTP/1.1"
    text = f"--b1\nContent-Type: application/http\n\n{request}\n\n--b1--\n"
    assert parse_request(text.encode(), 'multipart/mixed;boundary="b1"') == [
        BatchRequest("GET", "https://org.test/api/data/v9.2/contacts")
    ]
    assert boundary_of("multipart/mixed; boundary=batch_1") == "batch_1"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--b1\r\nContent-Type: application/http\r\n\r\nGET x HTTP/1.1\r\n", "multipart/mixed; boundary=b1"),
        (b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--", "multipart/mixed; boundary=b1"),
        (b"", "application/json"),
        (b"", "multipart/mixed"),
    ],
)
def test_malformed_batches_raise(body: bytes, content_type: str) -> None:
    with pytest.raises(BatchSyntaxError):
        parse_request(body, content_type)
