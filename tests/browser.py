"""Helpers for the browser tests: does a page fit its screen."""

from __future__ import annotations

import json

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


# The busy state lasts only while the form's request waits, and the answer's navigation ends it: a
# look after the click races that navigation. So the page records it itself, as it happens, in
# sessionStorage (which outlives a navigation within the tab), and the test reads it afterwards.
_WATCH_BUSY = """() => {
  sessionStorage.removeItem("busy-seen");
  document.querySelectorAll("form[data-busy] button[type=submit]").forEach(button => {
    new MutationObserver(() => {
      if (button.disabled) sessionStorage.setItem("busy-seen", JSON.stringify([button.textContent, true]));
    }).observe(button, {attributes: true, childList: true, characterData: true, subtree: true});
  });
}"""


def watch_busy(page: Page) -> None:
    """Before a submit: note what its button says once it turns busy."""
    page.evaluate(_WATCH_BUSY)


def busy_seen(page: Page) -> list | None:
    """After it: the button's text and disabled state while the request waited (None if never busy)."""
    seen = page.evaluate("sessionStorage.getItem('busy-seen')")
    return json.loads(seen) if seen else None
