"""The sync-log viewer: runs, a run's records (filters, search, keyset pages), one record, a contact's history."""

from __future__ import annotations

import re

import pytest

from integrations.destinations.iterable import IterableDestination
from sync_logs.explain import explain
from sync_logs.models import SyncRecord
from tests.sync_logs.factories import run_with_records

pytestmark = pytest.mark.django_db


def _record_ids(response) -> list[int]:
    return [int(x) for x in re.findall(r'data-record="(\d+)"', response.content.decode())]


def _identifiers(response) -> list[str]:
    return re.findall(r'data-record="\d+" data-status="\w+">\s*<td><a [^>]*>([^<]+)</a>', response.content.decode())


def test_tile_menu_leads_to_the_sync_logs(alice_client, integration, logs_url):
    page = alice_client.get("/w/acme/integrations/").content.decode()
    assert f'href="{logs_url()}"' in page and "Sync Logs" in page


def test_runs_newest_first_with_counts_and_bar(alice_client, integration, logs_url):
    older = run_with_records(integration, 4)
    newer = run_with_records(integration, 6, failed_every=2)
    response = alice_client.get(logs_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert [int(x) for x in re.findall(r'data-run="(\d+)"', html)] == [newer.pk, older.pk]
    assert 'aria-label="3 delivered, 0 skipped, 3 failed"' in html
    assert "Partial" in html and "Succeeded" in html


def test_runs_are_paged(alice_client, integration, logs_url):
    runs = [run_with_records(integration, 0) for _ in range(30)]
    first = alice_client.get(logs_url()).content.decode()
    shown = [int(x) for x in re.findall(r'data-run="(\d+)"', first)]
    assert shown == [r.pk for r in reversed(runs)][:25]
    after = re.search(r'data-testid="next" href="\?after=(\d+)"', first).group(1)
    second = alice_client.get(logs_url(f"?after={after}")).content.decode()
    assert [int(x) for x in re.findall(r'data-run="(\d+)"', second)] == [r.pk for r in reversed(runs)][25:]


def test_records_keyset_pages_forward_and_back(alice_client, integration, logs_url):
    run = run_with_records(integration, 120)
    ids = list(SyncRecord.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    first = alice_client.get(logs_url(f"runs/{run.pk}/"))
    assert _record_ids(first) == ids[:50]
    second = alice_client.get(logs_url(f"runs/{run.pk}/?after={ids[49]}"))
    assert _record_ids(second) == ids[50:100]
    third = alice_client.get(logs_url(f"runs/{run.pk}/?after={ids[99]}"))
    assert _record_ids(third) == ids[100:]
    assert 'data-testid="next"' not in third.content.decode()
    back = alice_client.get(logs_url(f"runs/{run.pk}/?before={ids[100]}"))
    assert _record_ids(back) == ids[50:100]
    assert 'data-testid="prev"' in back.content.decode() and 'data-testid="next"' in back.content.decode()
    assert 'data-testid="prev"' not in first.content.decode()


def test_failed_filter_and_email_search(alice_client, integration, logs_url):
    run = run_with_records(integration, 90, failed_every=3)
    failed = alice_client.get(logs_url(f"runs/{run.pk}/?status=failed"))
    statuses = re.findall(r'data-record="\d+" data-status="(\w+)"', failed.content.decode())
    assert statuses == ["failed"] * 30
    # Both filters at once: failed rows whose email starts with user001 (user0010..user0019, every third failed).
    both = alice_client.get(logs_url(f"runs/{run.pk}/?status=failed&q=user001"))
    assert _identifiers(both) == ["user0012@example.com", "user0015@example.com", "user0018@example.com"]
    search = alice_client.get(logs_url(f"runs/{run.pk}/?q=USER0042@"))
    assert _identifiers(search) == ["user0042@example.com"]
    none = alice_client.get(logs_url(f"runs/{run.pk}/?q=nobody"))
    assert _record_ids(none) == [] and "No record matches." in none.content.decode()


def test_odd_page_parameters_are_ignored(alice_client, integration, logs_url):
    run = run_with_records(integration, 3)
    for junk in ("²", "-1", "1e9", "9" * 40, "abc"):
        assert alice_client.get(logs_url(f"runs/{run.pk}/?after={junk}&before={junk}")).status_code == 200


def test_filters_survive_paging(alice_client, integration, logs_url):
    run = run_with_records(integration, 200, failed_every=2)
    html = alice_client.get(logs_url(f"runs/{run.pk}/?status=failed")).content.decode()
    next_link = re.search(r'data-testid="next" href="\?([^"]+)"', html).group(1).replace("&amp;", "&")
    assert next_link.startswith("status=failed&after=")
    page = alice_client.get(logs_url(f"runs/{run.pk}/?{next_link}"))
    assert set(re.findall(r'data-record="\d+" data-status="(\w+)"', page.content.decode())) == {"failed"}
    assert len(_record_ids(page)) == 50


def test_htmx_filter_returns_the_table_only(alice_client, integration, logs_url):
    run = run_with_records(integration, 10, failed_every=5)
    response = alice_client.get(
        logs_url(f"runs/{run.pk}/?status=failed"), headers={"HX-Request": "true", "HX-Target": "records"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="records">') and "<html" not in html
    assert len(_record_ids(response)) == 2


def test_failed_record_is_explained_with_payload_and_answer(alice_client, integration, logs_url):
    run = run_with_records(integration, 3, failed_every=3)
    record = SyncRecord.objects.get(run=run, status="failed")
    html = alice_client.get(logs_url(f"runs/{run.pk}/records/{record.pk}/")).content.decode()
    assert "Iterable rejected the field `age`: it is a whole number there, the form sent text" in html
    assert "Fix the mapping or the form." in html
    assert "RequestFieldsTypesMismatched" in html and "Iterable has &#x27;age&#x27; as long" in html
    assert "&quot;age&quot;: &quot;ten&quot;" in html  # the payload, as JSON
    run_page = alice_client.get(logs_url(f"runs/{run.pk}/")).content.decode()
    assert "Iterable rejected the field `age`" in run_page  # plain words in the list too


def test_a_record_flowsync_refused_says_it_was_not_sent_and_links_the_mapping(
    alice_client, integration, capture, run_sync, logs_url
):
    from flows.models import Contact

    contact = capture(1)[0]
    Contact.objects.filter(pk=contact.pk).update(data={**contact.data, "age": 36.5})  # a legacy value
    run = run_sync(integration)
    record = SyncRecord.objects.get(run=run)
    html = alice_client.get(logs_url(f"runs/{run.pk}/records/{record.pk}/")).content.decode()
    assert "Flowsync didn't send this: age → age: 36.5 is not a whole number" in html
    assert "Iterable&#x27;s answer" not in html and 'data-testid="fix-mapping"' in html
    run_page = alice_client.get(logs_url(f"runs/{run.pk}/")).content.decode()
    assert "Flowsync didn't send this:</strong> age → age" in run_page


def test_a_record_the_destination_refused_is_not_called_unsent():
    assert explain("type_mismatch", "", destination=IterableDestination, destination_code="X").sent
    assert not explain("mapping_error", "age → age: 'ten' is not a number").sent
    assert not explain("payload_too_large", "over the limit").sent  # measured by Flowsync
    assert explain("payload_too_large", "", destination_code="BatchTooLarge").sent


def test_a_record_of_another_run_is_404(alice_client, integration, logs_url):
    one, other = run_with_records(integration, 1), run_with_records(integration, 1)
    record = SyncRecord.objects.get(run=other)
    assert alice_client.get(logs_url(f"runs/{one.pk}/records/{record.pk}/")).status_code == 404


def test_contact_history_across_runs(alice_client, integration, capture, iterable, run_sync, settings):
    settings.DESTINATION_MAX_RETRIES = 0
    contact = capture(1)[0]
    iterable.fault("/api/users/bulkUpdate", status=500, times=1)  # the first run meets an outage
    first = run_sync(integration)
    assert first.failed == 1
    from integrations.models import OutboxItem

    OutboxItem.objects.filter(contact=contact).update(next_attempt_at=first.created_at)  # skip the backoff
    second = run_sync(integration)
    assert second.delivered == 1
    html = alice_client.get(f"/w/acme/contacts/{contact.pk}/").content.decode()
    assert "Where it went" in html
    assert html.index(f"#{second.pk}") < html.index(f"#{first.pk}")  # newest attempt first
    assert 'data-testid="outbox-status">Delivered' in html
    assert "Will retry" in html  # the first attempt's reason is kept


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "RequestFieldsTypesMismatched",
            "Iterable has 'age' as long, the value sent was 'ten' (string)",
            "it is a whole number there",
        ),
        ("type_mismatch", "something else", "type differs"),
        ("InvalidEmailAddressError", "x", "malformed"),
        ("http_503", "x", "error on its side"),
        # The shared transport's fallbacks, named by the destinations' one mapping (destinations.base).
        ("http_400", "x", "refused the request's content"),
        ("http_404", "x", "has no such person"),
        ("http_429", "x", "asked us to slow down"),
        ("mapping_error", "field age: 'ten' is not a number", "field age: 'ten' is not a number"),
        ("SomethingNew", "raw words", "raw words"),
        ("unexpected_answer", "x", "nothing proves this contact arrived"),
        (
            "fields_filtered_out",
            "Delivered without the field(s) `notes`, `size`: Iterable dropped them (...)",
            "Delivered, but Iterable dropped `notes`, `size`",
        ),
    ],
)
def test_explanations(code, message, expected):
    assert expected in explain(code, message, destination=IterableDestination).summary


def test_explanations_without_a_destination_use_the_shared_codes():
    assert "data is too large" in explain("http_413", "x").summary
    assert explain("http_502", "x").summary == "The destination had an error on its side."
    assert explain("SomethingNew", "raw words").summary == "raw words"
