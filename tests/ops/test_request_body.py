"""Request bodies are capped before anything reads them (lib.middleware.request_body_limit)."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from flows.models import Contact
from flows.services import capture_token_rotate
from tests.factories import make_flow

pytestmark = pytest.mark.django_db

CAP = 10_000


class Untouchable(io.RawIOBase):
    """A request body that fails the test if anyone reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")

    readline = read


@pytest.fixture(autouse=True)
def _cap(settings):
    settings.REQUEST_MAX_BODY_BYTES = CAP


@pytest.fixture
def flow(workspace_a):
    return make_flow(workspace_a)


@pytest.fixture
def token(workspace_a, alice) -> str:
    return capture_token_rotate(workspace=workspace_a, actor=alice)


def test_a_multipart_file_part_over_the_cap_never_reaches_django(client, flow):
    """Django's DATA_UPLOAD_MAX_MEMORY_SIZE leaves file parts out: 20 KB of "upload" passed it."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("big.bin", b"x" * (2 * CAP))
    response = client.post(f"/f/{flow.public_id}/", {"email": "a@example.com", "upload": upload})
    assert response.status_code == 413 and Contact.objects.count() == 0


@pytest.mark.parametrize("path", ["/accounts/login/", "/f/whatever/", "/admin/login/"])
def test_a_declared_length_over_the_cap_is_answered_unread(client, path):
    response = client.generic(
        "POST",
        path,
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(CAP + 1),
        **{"wsgi.input": Untouchable()},
    )
    assert response.status_code == 413 and f"limit of {CAP} bytes" in response.content.decode()


def test_the_capture_api_gets_its_own_error_envelope(client, token):
    response = client.generic(
        "POST",
        "/api/v1/contacts",
        content_type="application/json",
        CONTENT_LENGTH="999999999",
        headers={"Authorization": f"Bearer {token}"},
        **{"wsgi.input": Untouchable()},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def _chunked_environ(body: io.BytesIO) -> dict:
    # What gunicorn hands the app for "Transfer-Encoding: chunked": no CONTENT_LENGTH, a de-chunked
    # stream that ends with the body, and wsgi.input_terminated.
    return {"wsgi.input": body, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}


def test_a_chunked_body_is_read_one_byte_past_the_cap_and_no_further(client):
    body = io.BytesIO(b"x" * (5 * CAP))
    response = client.generic("POST", "/accounts/login/", **_chunked_environ(body))
    assert response.status_code == 413 and body.tell() == CAP + 1


def test_a_chunked_body_under_the_cap_is_read_whole(client, flow, token):
    """Django reads a body without Content-Length as empty: a chunked capture used to be 'invalid JSON'."""
    payload = json.dumps({"flow": flow.public_id, "fields": {"email": "ada@example.com"}}).encode()
    response = client.generic(
        "POST",
        "/api/v1/contacts",
        headers={"Authorization": f"Bearer {token}"},
        CONTENT_TYPE="application/json",  # the client sets it only with a body of its own
        **_chunked_environ(io.BytesIO(payload)),
    )
    assert response.status_code == 201, response.content
    assert Contact.objects.get().email == "ada@example.com"


# --- Through a real gunicorn ---------------------------------------------------------------------------


@pytest.fixture
def gunicorn(tmp_path):
    from bench.common import free_port
    from tests.conftest import _database_url_for_subprocess

    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--threads", "2"],
        cwd=django_settings.BASE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": _database_url_for_subprocess(),
            "DB_CONN_MAX_AGE": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "REQUEST_MAX_BODY_BYTES": str(CAP),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _chunked_post(port: int, path: str, chunks, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("POST", path, body=iter(chunks), headers={"Content-Type": "application/json", **(headers or {})})
    return conn.getresponse()


@pytest.mark.django_db(transaction=True)
def test_gunicorn_refuses_a_chunked_body_that_grows_past_the_cap_and_takes_one_under_it(gunicorn, flow, token):
    refused = _chunked_post(gunicorn, "/api/v1/contacts", [b"x" * 4096] * 3)  # 12,288 bytes, no length given
    assert refused.status == 413 and json.loads(refused.read())["error"]["code"] == "body_too_large"

    payload = json.dumps({"flow": flow.public_id, "fields": {"email": "ada@example.com"}}).encode()
    accepted = _chunked_post(
        gunicorn, "/api/v1/contacts", [payload[:10], payload[10:]], {"Authorization": f"Bearer {token}"}
    )
    assert accepted.status == 201, accepted.read()
    assert Contact.objects.get().email == "ada@example.com"


def test_gunicorn_answers_a_declared_length_over_the_cap_before_the_body_is_sent(gunicorn):
    with socket.create_connection(("127.0.0.1", gunicorn), timeout=20) as sock:
        sock.sendall(
            b"POST /f/whatever/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 104857600\r\n\r\n"
        )
        answer = sock.recv(200)  # 100 MB announced, not a byte of it sent
    assert answer.startswith(b"HTTP/1.1 413")
