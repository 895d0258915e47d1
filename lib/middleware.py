"""Project-wide request middleware: the request-body cap and the idle-session expiry."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse

Handler = Callable[[HttpRequest], HttpResponse]


def request_body_limit(get_response: Handler) -> Handler:
    """Refuse a body over ``REQUEST_MAX_BODY_BYTES`` before anything reads or parses it.

    Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE) leave out multipart file parts, which it
    spools to disk at any size, and apply only once a view or the CSRF check parses the body.
    This runs first: a declared Content-Length over the cap is answered 413 unread; a chunked
    body (no Content-Length; gunicorn de-chunks it) is read up to one byte past the cap, refused
    if it gets there, and otherwise handed on as a body of known length (Django would otherwise
    read a chunked body as empty). Behind deploy/nginx.conf the proxy holds the same cap.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        cap = settings.REQUEST_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                too_large = int(declared) > cap
            except ValueError:
                too_large = False  # Django reads an unreadable length as no body at all
            if too_large:
                return _body_too_large(request, cap)
        elif _chunked(request):
            body = request.META["wsgi.input"].read(cap + 1)
            if len(body) > cap:
                return _body_too_large(request, cap)
            # Django reads the body from _stream, bounded by CONTENT_LENGTH (WSGIRequest.__init__).
            request._stream = LimitedStream(io.BytesIO(body), len(body))
            request.META["CONTENT_LENGTH"] = str(len(body))
        return get_response(request)

    return middleware


def _chunked(request: HttpRequest) -> bool:
    # Only where the server de-chunks and ends the stream (PEP 3333's wsgi.input_terminated,
    # gunicorn): elsewhere reading past an unknown length would wait on the client for ever.
    return (
        bool(request.META.get("wsgi.input_terminated"))
        and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def _body_too_large(request: HttpRequest, cap: int) -> HttpResponse:
    message = f"The request body is over the limit of {cap} bytes."
    if request.path.startswith("/api/"):  # the capture API's error envelope (flows/api.py)
        return JsonResponse({"error": {"code": "body_too_large", "message": message}}, status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


SESSION_TOUCHED_KEY = "_flowsync_touched"
_clock = time.time  # a module attribute, so a test can move this clock alone


def session_idle_timeout(get_response: Handler) -> Handler:
    """End a session after ``SESSION_IDLE_TIMEOUT_SECONDS`` without a request (a sliding expiry).

    Each request of a live session moves its expiry to now + the timeout, by saving the session,
    but at most once a minute (SESSION_SAVE_EVERY_REQUEST would write the session row on every
    request). A session past its expiry is gone already: the session store no longer loads it, and
    the cookie's max-age has run out too. Goes after SessionMiddleware.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        session = request.session
        if request.COOKIES.get(settings.SESSION_COOKIE_NAME):
            timeout = settings.SESSION_IDLE_TIMEOUT_SECONDS
            now = int(_clock())
            touched = session.get(SESSION_TOUCHED_KEY)  # loads it: None when expired or unknown
            if session.session_key and (touched is None or now - touched >= min(60, timeout // 10)):
                session[SESSION_TOUCHED_KEY] = now  # modified, so saved with a fresh expiry
                # The expiry follows SESSION_IDLE_TIMEOUT_SECONDS itself, not only SESSION_COOKIE_AGE
                # (read once at start-up): the two can differ (an override, a test), the idle rule cannot.
                session.set_expiry(timeout)
        return get_response(request)

    return middleware


def destination_deadline(get_response: Handler) -> Handler:
    """One deadline per request for its calls to destinations (lib.deadline)."""
    from lib.deadline import deadline

    def middleware(request: HttpRequest) -> HttpResponse:
        with deadline(settings.DESTINATION_WEB_DEADLINE_SECONDS):
            return get_response(request)

    return middleware
