"""Reading rendered pages the way a browser would, without a browser: what a form submits, and
what in a page would run as inline script or style (which the Content-Security-Policy forbids)."""

from __future__ import annotations

from html.parser import HTMLParser

# <script type="..."> that browsers never run: data islands (Django's json_script) are fine.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json", "importmap"}


class _FormValues(HTMLParser):
    """The (name, value) pairs a browser submits for the form with ``form_id``, no button pressed."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.depth = 0  # > 0 while inside the form
        self.pairs: list[tuple[str, str]] = []
        self._select: dict | None = None
        self._textarea: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            if self.depth or a.get("id") == self.form_id:
                self.depth += 1
            return
        if not self.depth or ("disabled" in a and tag != "option"):
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in {"submit", "button", "reset", "image", "file"} or "name" not in a:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self.pairs.append((a["name"], a.get("value", "on")))
            else:
                self.pairs.append((a["name"], a.get("value", "")))
        elif tag == "select" and "name" in a:
            self._select = {"name": a["name"], "first": None, "selected": None}
        elif tag == "option" and self._select is not None:
            value = a.get("value")
            if value is None:
                value = ""  # a value-less option submits its text; the project's options all have values
            if self._select["first"] is None:
                self._select["first"] = value
            if "selected" in a:
                self._select["selected"] = value  # the last one marked wins, as in a single select
        elif tag == "textarea" and "name" in a:
            self._textarea = {"name": a["name"], "text": ""}

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.depth:
            self.depth -= 1
        elif tag == "select" and self._select is not None:
            picked = self._select["selected"] if self._select["selected"] is not None else self._select["first"]
            if picked is not None:
                self.pairs.append((self._select["name"], picked))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.pairs.append((self._textarea["name"], self._textarea["text"].removeprefix("\n")))
            self._textarea = None


def form_values(html: str, form_id: str) -> dict[str, str]:
    """What submitting the form ``form_id`` as rendered sends (single-valued names only)."""
    parser = _FormValues(form_id)
    parser.feed(html)
    parser.close()
    return dict(parser.pairs)


class _InlineCode(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        where = self.get_starttag_text() or f"<{tag}>"
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on"):
                self.problems.append(f"inline event handler {name}= in {where}")
            elif name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"htmx inline handler {name}= in {where}")
            elif name == "style":
                self.problems.append(f"inline style attribute in {where}")
            elif value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL in {where}")
        a = dict(attrs)
        if tag == "script" and not a.get("src") and (a.get("type") or "").lower() not in DATA_SCRIPT_TYPES:
            self.problems.append(f"inline <script> (no src): {where}")
        if tag == "style":
            self.problems.append(f"inline <style> element: {where}")


def inline_code(html: str) -> list[str]:
    """Everything in ``html`` that is script or style written into the page itself."""
    parser = _InlineCode()
    parser.feed(html)
    parser.close()
    return parser.problems
