"""A flow's QR code: the public form's absolute URL, drawn by segno, at sizes meant for print.

The code encodes SITE_URL, never the Host of the request that asked for it: a code printed on
ten thousand flyers must point at the real site even if the admin opened the page through a
proxy or a preview host (and a forged Host header cannot plant its own link on the flyer).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import segno
from django.conf import settings
from django.urls import reverse

from flows.models import ConversionFlow

PNG_DPI = 300  # what print shops ask for


@dataclass(frozen=True)
class PrintSize:
    key: str
    label: str
    millimetres: int


# Sizes with room for a phone camera at the distance each is read from: a sticker or a table tent
# at arm's length, a flyer, a poster across a shop window.
PRINT_SIZES = (
    PrintSize("s", "3 cm (sticker, table tent)", 30),
    PrintSize("m", "5 cm (flyer, receipt)", 50),
    PrintSize("l", "10 cm (poster)", 100),
)
DEFAULT_SIZE = "m"
FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


def flow_public_url(flow: ConversionFlow) -> str:
    return settings.SITE_URL + reverse("public-form", args=[flow.public_id])


def print_size(key: str | None) -> PrintSize:
    """The print size ``key`` names; the default for a missing or unknown one."""
    return next((size for size in PRINT_SIZES if size.key == key), None) or next(
        size for size in PRINT_SIZES if size.key == DEFAULT_SIZE
    )


def flow_qr_code(flow: ConversionFlow, *, fmt: str, size: PrintSize) -> bytes:
    """The flow's code as ``fmt`` (svg or png), ``size.millimetres`` wide with its quiet zone."""
    # Medium error correction at least (segno raises it when the same version has room): a print
    # may be creased, smudged or partly covered and still scan.
    code = segno.make(flow_public_url(flow), error="m", micro=False)
    modules = code.symbol_size(scale=1)[0]  # the quiet zone included
    out = io.BytesIO()
    if fmt == "svg":
        # Real millimetres: a print dialog or a layout program places it at its size.
        code.save(out, kind="svg", scale=size.millimetres / modules, unit="mm", xmldecl=False, title=flow.name)
    elif fmt == "png":
        # Whole pixels per module (a fractional one blurs the edges), at least the size at 300 dpi;
        # the dpi written in the file lets a print dialog place it at its size too.
        pixels = size.millimetres / 25.4 * PNG_DPI
        code.save(out, kind="png", scale=math.ceil(pixels / modules), dpi=PNG_DPI)
    else:
        raise ValueError(f"no QR code format {fmt!r}")
    return out.getvalue()
