"""With no AWS region anywhere, every AWS-facing command says so in one line and exits 2 (README, "dodo-cio")."""

from __future__ import annotations

from pathlib import Path

import pytest

from dodo_cio_cli import cli


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--stack", "s"],
        ["dlq", "--stack", "s"],
        ["redrive", "--stack", "s"],
        ["reprocess", "--stack", "s"],
        ["replay", "{body}", "--stack", "s"],
        ["backfill", "--stack", "s"],
        ["setup", "--stack", "s"],
        ["trace", "cus_1", "--stack", "s"],
        ["reconcile", "--since", "2026-11-01", "--stack", "s"],
    ],
    ids=lambda argv: argv[0],
)
def test_no_region_is_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # botocore would ask EC2's metadata service too
    body = tmp_path / "body.json"
    body.write_text("{}")
    code = cli.main([a.replace("{body}", str(body)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no AWS region" in err and "Traceback" not in err, err
