"""A flow's QR code: what it encodes (the public form at SITE_URL, whatever Host asked), its print
sizes, its downloads, and the printable page."""

from __future__ import annotations

import re
import struct
import zlib

import pytest
import segno
from django.test import Client

from tests.factories import FlowFactory, MembershipFactory, UserFactory, make_flow
from workspaces.models import Role

pytestmark = pytest.mark.django_db


def png_modules(png: bytes) -> tuple[list[list[bool]], int, int]:
    """The dark/light grid a 1-bit greyscale PNG draws, with its width and dots per inch: read
    from the file itself, so the test sees what a phone camera would."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    idat = b""
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        chunks[kind] = data
        if kind == b"IDAT":
            idat += data
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, depth, colour) == (height, 1, 0), "a square 1-bit greyscale image"
    ppm_x, _, unit = struct.unpack(">IIB", chunks[b"pHYs"])
    assert unit == 1  # per metre
    raw, stride = zlib.decompress(idat), (width + 7) // 8
    rows, prior = [], bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        assert line[0] in (0, 2), "rows as they are or as changes from the row above (what segno writes)"
        data = line[1:] if line[0] == 0 else bytes((a + b) & 0xFF for a, b in zip(line[1:], prior, strict=True))
        rows.append([not (data[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])  # 0 is black
        prior = data
    return rows, width, round(ppm_x * 0.0254)


def decode_grid(rows: list[list[bool]], modules: int) -> list[tuple[bool, ...]]:
    """Sample the centre of each module of a ``modules``-wide code (quiet zone included)."""
    scale = len(rows) / modules
    return [tuple(rows[int((y + 0.5) * scale)][int((x + 0.5) * scale)] for x in range(modules)) for y in range(modules)]


def expected_grid(url: str) -> list[tuple[bool, ...]]:
    code = segno.make(url, error="m", micro=False)
    return [tuple(bool(v) for v in row) for row in code.matrix_iter(border=4)]


@pytest.fixture
def flow(workspace_a):
    return make_flow(workspace_a, name="In-store QR code")


def test_the_png_encodes_the_public_form_at_site_url_even_when_the_host_is_forged(
    alice_client, workspace_a, flow, settings
):
    settings.SITE_URL = "https://forms.flowsync.example"
    settings.ALLOWED_HOSTS = ["*"]
    response = alice_client.get(f"/w/acme/flows/{flow.pk}/qr.png", headers={"host": "evil.example"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    rows, width, dpi = png_modules(response.content)
    url = f"https://forms.flowsync.example/f/{flow.public_id}/"
    modules = len(expected_grid(url))
    assert decode_grid(rows, modules) == expected_grid(url)
    assert decode_grid(rows, modules) != expected_grid(f"http://evil.example/f/{flow.public_id}/")
    # The default print size: at least 5 cm at 300 dpi, and the file says 300 dpi.
    assert dpi == 300
    assert 50 <= width / dpi * 25.4 < 55


@pytest.mark.parametrize(("size", "millimetres"), [("s", 30), ("m", 50), ("l", 100), ("huge", 50), ("", 50)])
def test_each_print_size_downloads_as_svg_in_real_millimetres(alice_client, flow, size, millimetres):
    response = alice_client.get(f"/w/acme/flows/{flow.pk}/qr.svg", {"size": size, "download": "1"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    svg = response.content.decode()
    assert re.search(rf'width="{millimetres}(\.0)?mm" height="{millimetres}(\.0)?mm"', svg), svg[:200]
    assert "<title>In-store QR code</title>" in svg
    assert response["Content-Disposition"] == f'attachment; filename="in-store-qr-code-qr-{millimetres // 10}cm.svg"'


@pytest.mark.parametrize(("size", "millimetres"), [("s", 30), ("l", 100)])
def test_each_print_size_downloads_as_png_of_at_least_its_size(alice_client, flow, size, millimetres):
    response = alice_client.get(f"/w/acme/flows/{flow.pk}/qr.png", {"size": size, "download": "1"})
    _, width, dpi = png_modules(response.content)
    assert millimetres <= width / dpi * 25.4 < millimetres * 1.1
    assert response["Content-Disposition"].endswith(f'-qr-{millimetres // 10}cm.png"')


def test_a_name_that_is_markup_stays_text_in_the_svg_and_the_file_name(alice_client, workspace_a):
    flow = FlowFactory(workspace=workspace_a, name='<script>alert(1)</script> & "Q"')
    response = alice_client.get(f"/w/acme/flows/{flow.pk}/qr.svg", {"download": "1"})
    svg = response.content.decode()
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert response["Content-Disposition"] == 'attachment; filename="scriptalert1script-q-qr-5cm.svg"'


def test_another_workspace_s_flow_has_no_code_here(alice_client, workspace_b):
    other = FlowFactory(workspace=workspace_b)
    assert alice_client.get(f"/w/acme/flows/{other.pk}/qr.svg").status_code == 404
    assert alice_client.get(f"/w/acme/flows/{other.pk}/qr/print/").status_code == 404


def test_an_unknown_format_is_not_found(alice_client, flow):
    assert alice_client.get(f"/w/acme/flows/{flow.pk}/qr.gif").status_code == 404


def test_a_viewer_may_print_and_download(workspace_a, flow):
    viewer = UserFactory()
    MembershipFactory(workspace=workspace_a, user=viewer, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert client.get(f"/w/acme/flows/{flow.pk}/qr.png").status_code == 200
    assert client.get(f"/w/acme/flows/{flow.pk}/qr/print/").status_code == 200


def test_the_printable_page_shows_the_name_the_code_and_the_call_to_action(alice_client, flow, settings):
    settings.SITE_URL = "https://forms.flowsync.example"
    page = alice_client.get(f"/w/acme/flows/{flow.pk}/qr/print/").content.decode()
    assert "In-store QR code" in page
    assert f'src="/w/acme/flows/{flow.pk}/qr.svg?size=l"' in page
    assert "Scan with your phone&#x27;s camera to sign up" in page
    assert f"https://forms.flowsync.example/f/{flow.public_id}/" in page

    reworded = alice_client.get(f"/w/acme/flows/{flow.pk}/qr/print/", {"cta": "<b>Win</b> a coffee " + "x" * 200})
    body = reworded.content.decode()
    assert "&lt;b&gt;Win&lt;/b&gt; a coffee" in body
    assert "x" * 121 not in body  # cut to the field's 120 characters


def test_the_flow_page_shows_the_code_and_its_downloads(alice_client, flow, settings):
    settings.SITE_URL = "https://forms.flowsync.example"
    page = alice_client.get(f"/w/acme/flows/{flow.pk}/").content.decode()
    assert f'src="/w/acme/flows/{flow.pk}/qr.svg"' in page
    assert f'data-copy="https://forms.flowsync.example/f/{flow.public_id}/"' in page
    for size in ("s", "m", "l"):
        assert f"qr.png?size={size}&amp;download=1" in page
        assert f"qr.svg?size={size}&amp;download=1" in page
