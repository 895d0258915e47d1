"""Helpers for the browser tests: does a page fit its screen."""

from __future__ import annotations

from playwright.sync_api import Page

# The elements whose right edge passes the screen's (the last few, the innermost last); a wide
# table inside its own scroll box (.table-wrap) is meant to.
WIDER_THAN_SCREEN = """width => [...document.querySelectorAll("body *")]
  .filter(el => el.getBoundingClientRect().right > width + 0.5 && !el.closest(".table-wrap *"))
  .map(el => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().right)}px`)
  .slice(-5)"""


def fits(page: Page, width: int) -> None:
    """The page is no wider than the screen; the message names the elements that stick out."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.evaluate(WIDER_THAN_SCREEN, width)
