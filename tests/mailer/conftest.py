"""A real SMTP server on loopback (just enough of RFC 5321 for smtplib), with faults to order:
the first N connections stall (accepted, never greeted), or every recipient is refused with a 5xx."""

from __future__ import annotations

import email
import socket
import threading
from email.message import Message

import pytest


class SMTPServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stall_first = 0
        self.refuse_recipients = False
        self.connections = 0
        self.messages: list[Message] = []
        self._stalled: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.stall_first:
                self._stalled.append(conn)  # held open, never answered: the client's timeout decides
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:

            def say(text: str) -> None:
                conn.sendall(text.encode() + b"\r\n")

            say("220 test ESMTP")
            for raw in lines:
                verb = raw.decode(errors="replace").strip().split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    say("250 test")
                elif verb == "RCPT" and self.refuse_recipients:
                    say("550 5.1.1 no such user")
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    say("250 OK")
                elif verb == "DATA":
                    say("354 end with <CRLF>.<CRLF>")
                    body = b"".join(iter(lines.readline, b".\r\n"))
                    self.messages.append(email.message_from_bytes(body))
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("502 not implemented")

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        for conn in self._stalled:
            conn.close()


@pytest.fixture
def smtp_server(settings):
    """The server, with the app's SMTP settings pointed at it (a one-second EMAIL_TIMEOUT)."""
    server = SMTPServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 1
    yield server
    server.stop()
