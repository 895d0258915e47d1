from __future__ import annotations

import pytest

from flows.models import Contact

pytestmark = pytest.mark.django_db


def submit(client, flow, data: dict, **extra):
    """POST the public form as a browser does: urlencoded (the form refuses multipart)."""
    from urllib.parse import urlencode

    return client.post(
        f"/f/{flow.public_id}/", urlencode(data), content_type="application/x-www-form-urlencoded", **extra
    )


def test_it_renders_every_field(client, flow):
    response = client.get(f"/f/{flow.public_id}/")
    html = response.content.decode()
    assert response.status_code == 200
    for key in ("email", "first_name", "age", "birthday", "vip", "size", "phone"):
        assert f'name="{key}"' in html


def test_a_valid_submission_stores_a_contact(client, flow):
    response = submit(
        client,
        flow,
        {"email": "Ada@Example.com", "first_name": "Ada", "age": "36", "vip": "on", "size": "M", "birthday": ""},
    )
    assert response.status_code == 302 and response["Location"] == f"/f/{flow.public_id}/thanks/"
    contact = Contact.objects.get()
    assert contact.email == "ada@example.com" and contact.source == Contact.Source.FORM
    assert contact.data == {"email": "Ada@Example.com", "first_name": "Ada", "age": 36, "vip": True, "size": "M"}
    assert "Thanks" in client.get(response["Location"]).content.decode()


def test_invalid_submission_shows_errors_keeps_values_and_stores_nothing(client, flow):
    response = submit(client, flow, {"email": "ada@", "first_name": "Ada", "age": "ten"})
    html = response.content.decode()
    assert response.status_code == 400
    assert "not a valid email" in html and "&#x27;ten&#x27; is not a number" in html
    assert 'value="Ada"' in html
    assert Contact.objects.count() == 0


def test_a_nul_character_is_refused_with_the_field_named(client, flow):
    # %00 reaches request.POST as a NUL character, which PostgreSQL cannot store.
    response = client.post(
        f"/f/{flow.public_id}/",
        "email=a%40b.co&first_name=Ada%00",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400 and "First name must not contain NUL" in response.content.decode()
    assert Contact.objects.count() == 0


def test_unknown_posted_field_is_named(client, flow):
    response = submit(client, flow, {"email": "a@b.co", "injected": "x"})
    assert response.status_code == 400 and "unknown field &#x27;injected&#x27;" in response.content.decode()
    assert Contact.objects.count() == 0


def test_disabled_flow_is_closed(client, flow):
    flow.is_enabled = False
    flow.save()
    assert client.get(f"/f/{flow.public_id}/").status_code == 410
    assert submit(client, flow, {"email": "a@b.co"}).status_code == 410
    assert Contact.objects.count() == 0


def test_unknown_flow_is_404(client):
    assert client.get("/f/doesnotexist/").status_code == 404


def test_rate_limited_per_ip(client, flow, settings):
    settings.RATELIMIT_FORM_PER_IP = 2
    statuses = [submit(client, flow, {"email": f"u{i}@b.co"}).status_code for i in range(3)]
    assert statuses == [302, 302, 429]
    assert Contact.objects.count() == 2


def test_rate_limited_per_flow_across_ips(client, flow, settings):
    settings.RATELIMIT_FORM_PER_FLOW = 1
    assert submit(client, flow, {"email": "a@b.co"}, REMOTE_ADDR="10.0.0.1").status_code == 302
    assert submit(client, flow, {"email": "b@b.co"}, REMOTE_ADDR="10.0.0.2").status_code == 429


def test_the_form_is_csrf_protected(flow):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert submit(strict, flow, {"email": "a@b.co"}).status_code == 403
    page = strict.get(f"/f/{flow.public_id}/")
    token = page.context["csrf_token"]
    assert submit(strict, flow, {"email": "a@b.co", "csrfmiddlewaretoken": str(token)}).status_code == 302


@pytest.mark.parametrize(
    ("setting", "data", "status", "words"),
    [
        ("DATA_UPLOAD_MAX_MEMORY_SIZE", {"email": "a@b.co", "first_name": "x" * 2000}, 413, "too large"),
        ("DATA_UPLOAD_MAX_NUMBER_FIELDS", {f"k{i}": "1" for i in range(20)}, 400, "too many fields"),
    ],
)
def test_an_oversized_post_gets_the_form_page_with_a_clear_message(flow, settings, setting, data, status, words):
    from django.test import Client

    setattr(settings, setting, 10 if setting.endswith("FIELDS") else 1000)
    # As a browser posts it, CSRF checks on: CSRF middleware reads the body first, so a body
    # over Django's limits used to end in its bare 400 page before the view could answer.
    strict = Client(enforce_csrf_checks=True)
    token = str(strict.get(f"/f/{flow.public_id}/").context["csrf_token"])
    response = submit(strict, flow, {**data, "csrfmiddlewaretoken": token})
    html = response.content.decode()
    assert response.status_code == status
    assert words in html and 'name="email"' in html  # the form itself, to send again
    assert Contact.objects.count() == 0


def test_junk_in_the_url_is_404_not_500(client):
    assert client.get("/f/%00abc/").status_code == 404
    assert client.get("/f/" + "x" * 40 + "/").status_code == 404


def test_a_multipart_post_is_refused_unparsed(client, flow):
    """The form has no file fields: a multipart body (file parts and all) is not parsed, nor stored."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("payload.bin", b"x" * 1000)
    response = client.post(f"/f/{flow.public_id}/", {"email": "a@b.co", "upload": upload})
    html = response.content.decode()
    assert response.status_code == 415 and "takes no files" in html and 'name="email"' in html
    assert Contact.objects.count() == 0


def test_an_email_without_a_dotted_domain_is_refused_with_the_field_named(client, flow):
    response = submit(client, flow, {"email": "user@localhost", "first_name": "Ada"})
    html = response.content.decode()
    assert response.status_code == 400 and "needs a full domain after the @" in html
    assert Contact.objects.count() == 0
