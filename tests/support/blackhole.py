"""A loopback endpoint that accepts connections, reads what is sent, and never answers.

The failure issue 10 measured: a DynamoDB or SQS endpoint that takes the connection (so the connect
timeout never fires) and then says nothing, leaving each attempt to wait its full read timeout.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class BlackHole:
    """`with BlackHole() as hole:` point a client at `hole.url`; `hole.connections` counts accepts."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._server.settimeout(0.05)  # accept() wakes to notice the stop: closing it would not wake it
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="black-hole", daemon=True)

    def __enter__(self) -> BlackHole:
        self._acceptor.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._acceptor.join(timeout=2)
        self._server.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)  # an accepted socket inherits the listener's timeout
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    @staticmethod
    def _swallow(conn: socket.socket) -> None:
        """Read the request so the client's send never blocks; answer nothing."""
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
