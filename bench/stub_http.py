"""A minimal keep-alive HTTP/1.1 stub on loopback: Customer.io answers 200 `{}`, AWS JSON APIs answer canned JSON.

Why not the TrackSandbox: it validates every op against the Track v2 schema (jsonschema), which
costs more than the bridge itself; a stub that only frames HTTP keeps the warm-ingest comparison
about the bridge. It runs in its own process (started with `start()`), so it never competes with
the measured code for the GIL. asyncio, no threads, TCP_NODELAY, pipelining-safe framing.

AWS: requests carrying `X-Amz-Target` (the JSON protocol botocore uses for DynamoDB, SSM and SQS)
get a plausible answer, so a real botocore client can be pointed at it with AWS_ENDPOINT_URL —
used by the cold-start benchmark to include real client creation, signing and parsing.
`fake_aws_server.py` reuses the framing (`serve`) with state behind it.

    python bench/stub_http.py [--port N]   # prints "http://127.0.0.1:PORT" and serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from common import SECRET_VALUES

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

Responder = Callable[[str, bytes], bytes]


def json_response(doc: Any, status: str = "200 OK") -> bytes:
    payload = json.dumps(doc).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: bench\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def stub_answer(target: str, body: bytes) -> bytes:
    """Customer.io: 200 `{}`. AWS (X-Amz-Target set): a plausible canned answer, no state."""
    if not target:
        return _OK
    operation = target.rsplit(".", 1)[-1]
    doc: dict[str, Any] = {}
    if operation == "GetParameters":
        names = json.loads(body or b"{}").get("Names", [])
        doc = {
            "Parameters": [
                {"Name": n, "Type": "SecureString", "Value": SECRET_VALUES[n], "Version": 1}
                for n in names
                if n in SECRET_VALUES
            ],
            "InvalidParameters": [n for n in names if n not in SECRET_VALUES],
        }
    elif operation == "SendMessage":
        message = json.loads(body or b"{}").get("MessageBody", "")
        doc = {
            "MessageId": hashlib.sha1(body).hexdigest(),  # noqa: S324 - an id, not security
            "MD5OfMessageBody": hashlib.md5(message.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        }
    return json_response(doc)


class HttpConnection(asyncio.Protocol):
    """HTTP/1.1 framing (Content-Length bodies, keep-alive, pipelining); `respond(target, body)` answers."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length, target = 0, ""
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-amz-target":
                    target = value.strip().decode()
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            assert self.transport is not None
            self.transport.write(self.respond(target, body))


async def serve(respond: Responder, port: int = 0) -> None:
    """Serve on 127.0.0.1:`port`; print the base URL (one line) once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpConnection(respond), "127.0.0.1", port, backlog=256)
    bound = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


@contextmanager
def start(script: str = __file__, *args: str) -> Iterator[str]:
    """Run the stub (or another server built on `serve`) in a child process; yield its base URL."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"{script} did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(stub_answer, args.port))


if __name__ == "__main__":
    main()
