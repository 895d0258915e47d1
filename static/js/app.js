// Flowsync's one script. Pages carry data attributes, never inline JavaScript (the
// Content-Security-Policy refuses it): whatever a page shows, the browser runs only this
// file and htmx. Listeners sit on the document, so content htmx swaps in works the same.
(function () {
  "use strict";

  // <form data-confirm="…">: ask first. The text is data, shown as it is: a member's email
  // in it can never become code. (htmx forms use hx-confirm, which works the same way.)
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // <form data-busy="Checking…">: a submit that waits on a destination says so, and cannot be pressed
  // twice. The button is disabled after the browser has read the form (a disabled button's name and
  // value would not be sent), and comes back if the page is shown again from the back/forward cache.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-busy") || event.defaultPrevented) return;
    var button = event.submitter || form.querySelector("button[type=submit], button:not([type])");
    if (!button) return;
    window.setTimeout(function () {
      button.setAttribute("data-label", button.textContent);
      button.textContent = form.getAttribute("data-busy");
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
    }, 0);
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[aria-busy=true]").forEach(function (form) {
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[data-label]").forEach(function (button) {
        button.textContent = button.getAttribute("data-label");
        button.disabled = false;
      });
    });
  });

  document.addEventListener("click", function (event) {
    var el = event.target instanceof Element ? event.target.closest("[data-copy], [data-print]") : null;
    if (!el) return;

    // <button data-print>: the browser's print dialog (the page's print styles hide the controls).
    if (el.hasAttribute("data-print")) {
      window.print();
      return;
    }

    // <button data-copy="text" data-copied="Copied">: put the text on the clipboard, say so for 2 s.
    var text = el.getAttribute("data-copy");
    if (!el.hasAttribute("data-label")) el.setAttribute("data-label", el.textContent);
    var label = el.getAttribute("data-label");
    var done = function (message) {
      el.textContent = message;
      window.setTimeout(function () { el.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { done(el.getAttribute("data-copied") || "Copied"); },
        function () { window.prompt("Copy the link:", text); }
      );
    } else {
      // Plain http on a LAN host has no clipboard API: let the admin copy it by hand.
      window.prompt("Copy the link:", text);
    }
  });

  // A filter form's GET leaves out its empty fields: "?status=failed", not "?status=failed&q=".
  // (hx-get names the page's path: an empty one would send the current URL's query again, and
  // each change would append to it.)
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (detail.verb !== "get" || !detail.formData) return;
    var empty = [];
    detail.formData.forEach(function (value, key) { if (value === "") empty.push(key); });
    empty.forEach(function (key) { detail.formData.delete(key); });
  });

  // Back and Forward: htmx puts back the page it kept for that URL, but it kept it as the
  // filter stood when the admin left it, already changed for the next search. The URL is what
  // was searched: the filter forms whose searches go into the URL are set from it.
  document.addEventListener("htmx:historyRestore", function () {
    var query = new URLSearchParams(window.location.search);
    document.querySelectorAll("form[hx-push-url]").forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || el.type === "submit" || el.type === "hidden") return;
        if (el.type === "checkbox" || el.type === "radio") el.checked = query.getAll(el.name).indexOf(el.value) !== -1;
        else el.value = query.get(el.name) || "";
      });
    });
  });

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!(el instanceof HTMLElement)) return;

    // <select data-autosubmit>: a new value submits its form (a <noscript> button does it without JS).
    if (el.matches("select[data-autosubmit]") && el.form) {
      if (el.form.requestSubmit) el.form.requestSubmit();
      else el.form.submit();
      return;
    }

    // <select data-navigate>: go where the picked option's data-href says.
    if (el.matches("select[data-navigate]")) {
      var option = el.selectedOptions[0];
      var href = option && option.getAttribute("data-href");
      if (href) window.location.assign(href);
      return;
    }

    // Field mapping: the "new field name" input shows only when "Create new field…" is picked.
    if (el.classList.contains("target-select")) {
      var input = el.parentElement.querySelector(".new-name");
      if (!input) return;
      input.hidden = el.value !== "__new__";
      if (!input.hidden) input.focus();
    }
  });
})();
