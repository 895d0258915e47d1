"""Helpers for the browser tests: does a page fit its screen."""

from __future__ import annotations

from playwright.sync_api import Page

# What makes a page wider than the screen (the innermost last, a few): an element whose right edge
# passes the screen's, or text that runs out of its box (a long address in a message). A wide table
# inside its own scroll box (.table-wrap) is meant to.
WIDER_THAN_SCREEN = """width => [...document.querySelectorAll("body *")]
  .filter(el => !el.closest(".table-wrap *") && (el.getBoundingClientRect().right > width + 0.5
    || (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible" && el.children.length === 0)))
  .map(el => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().right)}px`)
  .slice(-5)"""


def fits(page: Page, width: int) -> None:
    """The page is no wider than the screen; the message names the elements that stick out."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.evaluate(WIDER_THAN_SCREEN, width)
