"""A real HTTP receiver on 127.0.0.1 for webhook tests: answers from a script (a list of
statuses, the last one repeated), records every request's headers and body, and can hold a
request open until released (to kill a worker mid-delivery)."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict
    body: bytes


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=lambda: [200])
    hold_first: bool = False
    redirect_to: str = ""
    response_body: bytes = b"ok"
    requests: list[Received] = field(default_factory=list)
    first_arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                number = len(receiver.requests)
                receiver.requests.append(
                    Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                )
                if number == 0:
                    receiver.first_arrived.set()
                    if receiver.hold_first:
                        receiver.release.wait(timeout=60)
                        return  # the sender is gone: answer nothing
                status = receiver.statuses[min(number, len(receiver.statuses) - 1)]
                self.send_response(status)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", str(len(receiver.response_body)))
                self.end_headers()
                self.wfile.write(receiver.response_body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
