"""`dodo-cio send` over real loopback HTTP: exit codes, exact signed bytes, stdin, env secret."""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dodo_cio.receiving.signature import parse_secrets, verify
from dodo_cio_cli import cli
from support.receiver import Receiver, loopback_receiver

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = ROOT / "events" / "dodo" / "payment.succeeded.json"
SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-for-the-cli-0001").decode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as box:
        yield box


@pytest.fixture(autouse=True)
def _no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DODO_WEBHOOK_SECRET", raising=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- send ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(200, 0), (202, 0), (400, 1), (401, 1), (500, 1)])
def test_send_exit_code_follows_the_answer(receiver: Receiver, capsys, status: int, code: int) -> None:
    receiver.status = status
    assert cli.main(["send", str(PAYMENT), "--url", receiver.url, "--secret", SECRET]) == code
    out = capsys.readouterr().out
    assert out.startswith(f"HTTP {status}")
    assert f'"answer": {status}' in out


def test_send_signs_the_exact_body(receiver: Receiver) -> None:
    args = ["send", str(PAYMENT), "--url", receiver.url, "--secret", SECRET]
    args += ["--webhook-id", "msg_fixed", "--header", "X-Extra: yes"]
    assert cli.main(args) == 0
    ((headers, body),) = receiver.received
    assert body == PAYMENT.read_bytes()
    assert headers["webhook-id"] == "msg_fixed"
    assert headers["x-extra"] == "yes"
    assert verify(headers, body, parse_secrets(SECRET)).webhook_id == "msg_fixed"


def test_send_reads_stdin_and_the_secret_from_env(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DODO_WEBHOOK_SECRET", SECRET)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"x": 1}')))
    assert cli.main(["send", "-", "--url", receiver.url]) == 0
    ((headers, body),) = receiver.received
    assert body == b'{"x": 1}'
    verify(headers, body, parse_secrets(SECRET))


def test_send_without_a_server_is_a_connection_error(capsys) -> None:
    url = f"http://127.0.0.1:{_free_port()}/webhooks/dodo"
    assert cli.main(["send", str(PAYMENT), "--url", url, "--secret", SECRET]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err
    assert "make run" in err
