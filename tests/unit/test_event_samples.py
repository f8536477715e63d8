"""events/dodo/ holds a body for every type the default mapping handles, each one usable by `dodo-cio send`.

Also: the generated bodies have not drifted from `dodo_cio_testdata.sample_bodies`, the signed events in
events/apigw/ are not stale, and (when the dodopayments SDK is installed, as in the dev environment)
every body is one Dodo's own typed models accept, with exactly the fields they declare.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dodo_cio import events
from dodo_cio.mapping import MappingConfig, map_event
from dodo_cio.models import DodoEvent, parse_envelope, parse_json, parse_payload
from dodo_cio_testdata import make_events, sample_bodies

ROOT = Path(__file__).resolve().parents[2]
BODIES = ROOT / "events" / "dodo"
BODY_FILES = sorted(BODIES.glob("*.json"))
MAPPED_TYPES = sorted(events.ALL_TYPES - events.PAYOUT_TYPES)

# Fields Dodo's example payloads carry beyond the SDK's per-event models (payload_type everywhere it is
# known; customer and reason on disputes).
EXTRA_FIELDS: dict[str, frozenset[str]] = {
    events.DISPUTE: frozenset({"payload_type", "customer", "reason"}),
}
DEFAULT_EXTRA = frozenset({"payload_type"})


def _doc(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _types_present() -> set[str]:
    return {_doc(p)["type"] for p in BODY_FILES}


def test_the_default_mapping_ignores_only_payouts() -> None:
    assert MappingConfig().ignored_types == events.PAYOUT_TYPES
    assert set(MAPPED_TYPES) == set(sample_bodies.mapped_types())


@pytest.mark.parametrize("event_type", MAPPED_TYPES)
def test_every_mapped_type_has_a_body(event_type: str) -> None:
    assert event_type in _types_present(), f"no body for {event_type} in events/dodo/"
    assert (BODIES / f"{event_type}.json").is_file(), f"events/dodo/{event_type}.json"


def test_no_body_for_a_type_the_mapping_ignores() -> None:
    assert not _types_present() & events.PAYOUT_TYPES


@pytest.mark.parametrize("path", BODY_FILES, ids=lambda p: p.name)
def test_file_name_matches_the_type(path: Path) -> None:
    event_type = _doc(path)["type"]
    assert path.name == f"{event_type}.json" or path.name.startswith(f"{event_type}."), path.name


@pytest.mark.parametrize("path", BODY_FILES, ids=lambda p: p.name)
def test_every_body_parses_and_maps_to_its_event(path: Path) -> None:
    raw = path.read_bytes()
    doc = json.loads(raw)
    envelope = parse_envelope(parse_json(raw))
    payload = parse_payload(envelope)
    assert payload is not None, f"{envelope.type} is not a known type"
    ops = map_event(DodoEvent(f"msg_sample_{path.stem}", envelope, payload), MappingConfig())
    assert len(ops) >= 1
    event_ops = [op for op in ops if op["action"] == "event"]
    assert [op["name"] for op in event_ops] == [doc["type"]]
    assert all(len(op["identifiers"]) == 1 for op in ops)


def test_event_times_are_distinct() -> None:
    stamps = [_doc(p)["timestamp"] for p in BODY_FILES]
    assert len(set(stamps)) == len(stamps)


@pytest.mark.parametrize("path", BODY_FILES, ids=lambda p: p.name)
def test_no_real_looking_emails(path: Path) -> None:
    def emails(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [e for v in value.values() for e in emails(v)]
        if isinstance(value, list):
            return [e for v in value for e in emails(v)]
        return [value] if isinstance(value, str) and "@" in value else []

    for email in emails(_doc(path)):
        assert email.rsplit("@", 1)[1].split(".")[0] == "example", email


def test_generated_bodies_have_not_drifted() -> None:
    assert sample_bodies.main(["--check"]) == 0, "run: .venv/bin/python -m dodo_cio_testdata.sample_bodies"


def test_generator_never_writes_a_research_sample() -> None:
    generated = set(sample_bodies.build())
    assert not generated & sample_bodies.RESEARCH_SAMPLES
    assert generated | sample_bodies.RESEARCH_SAMPLES == {p.name for p in BODY_FILES}


def test_generator_reports_drift_and_gaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in sample_bodies.RESEARCH_SAMPLES:
        (tmp_path / name).write_bytes((BODIES / name).read_bytes())
    assert sample_bodies.main(["--check", "--bodies", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "stale:" in err and "no body: credit.balance_low" in err
    assert sample_bodies.main(["--bodies", str(tmp_path)]) == 0
    assert sample_bodies.main(["--check", "--bodies", str(tmp_path)]) == 0
    (tmp_path / "dunning.started.json").write_text("{}\n", encoding="utf-8")
    assert sample_bodies.main(["--check", "--bodies", str(tmp_path)]) == 1


def test_signed_events_are_not_stale() -> None:
    assert make_events.main(["--check"]) == 0, "run: .venv/bin/python -m dodo_cio_testdata.make_events"
    assert {p.name for p in (ROOT / "events" / "apigw").glob("*.json")} == {p.name for p in BODY_FILES}


@pytest.mark.parametrize("path", BODY_FILES, ids=lambda p: p.name)
def test_dodo_sdk_accepts_every_body_with_exactly_its_fields(path: Path) -> None:
    pytest.importorskip("dodopayments")
    from dodopayments.types import UnwrapWebhookEvent
    from pydantic import TypeAdapter

    doc = _doc(path)
    parsed: Any = TypeAdapter(UnwrapWebhookEvent).validate_python(doc)  # strict: enums, required fields
    assert parsed.type == doc["type"]
    declared = set(type(parsed.data).model_fields)
    extra = EXTRA_FIELDS.get(events.family(doc["type"]) or "", DEFAULT_EXTRA)
    assert set(doc["data"]) - declared <= extra, "a field Dodo's model does not declare"
    assert declared <= set(doc["data"]), "every declared field is present (null when unset)"
