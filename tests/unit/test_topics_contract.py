"""topics/ is the contract: its files match the models, its samples match its schemas."""

from __future__ import annotations

import ssl
from datetime import UTC
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from pydantic import SecretStr

from stream_edits.engine.intake import decode_claim_line
from stream_edits.formats.reader import read_claims
from stream_edits.jobs.check import final_decisions
from stream_edits.kafka.topics import (
    CONTRACT_DIR,
    contract_files,
    kafka_client_kwargs,
    line_key,
    topic_specs,
)
from stream_edits.models import ClaimLineEvent, Rejection
from stream_edits.rules.loader import load_rules
from stream_edits.settings import Settings

SAMPLES = CONTRACT_DIR / "samples"
DEFAULTS = Settings.model_construct()

# One refused input per line of samples/bad-claim-lines.ndjson, with the field the reason names.
BAD_SAMPLES = [
    ("malformed JSON", "malformed JSON"),
    ("missing member_id", "member_id"),
    ("bad NPI check digit", "provider_npi"),
    ("impossible date 2025-02-30", "date_of_service"),
    ("bad procedure code", "procedure_code"),
    ("void with line fields", "line_number"),
]


def ndjson_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def contract(topic: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((CONTRACT_DIR / f"{topic}.json").read_bytes())
    return loaded


@pytest.mark.parametrize("name", sorted(contract_files()))
def test_the_checked_in_contract_file_equals_what_the_models_generate(name: str) -> None:
    path = CONTRACT_DIR / name
    assert path.is_file(), f"{path} is missing: run python -m stream_edits.kafka.topics"
    assert path.read_bytes() == contract_files()[name], (
        f"{path} drifted from the models: run python -m stream_edits.kafka.topics"
    )


def test_there_is_one_contract_file_per_topic_named_as_in_settings() -> None:
    on_disk = {p.name for p in CONTRACT_DIR.glob("*.json")}
    names = {DEFAULTS.input_topic, DEFAULTS.output_topic, DEFAULTS.dlq_topic}
    assert on_disk == {f"{name}.json" for name in names}
    assert {contract(name)["name"] for name in names} == names


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(raw, id=f"line-{n}")
        for n, raw in enumerate(ndjson_lines(SAMPLES / "claim-lines.ndjson"), start=1)
    ],
)
def test_every_sample_line_is_valid_under_the_schema_and_the_model(raw: bytes) -> None:
    schema = contract(DEFAULTS.input_topic)["value_schema"]
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(orjson.loads(raw))
    ClaimLineEvent.model_validate_json(raw)


def test_the_samples_cover_the_scenarios_the_readme_names() -> None:
    raws = ndjson_lines(SAMPLES / "claim-lines.ndjson")
    events = [ClaimLineEvent.model_validate_json(raw) for raw in raws]
    assert 15 <= len(events) <= 30
    codes = [e.procedure_code for e in events]
    assert {"64461", "64462", "76942", "77002", "99213", "36415", "71046"} <= set(codes)
    assert len(raws) > len(set(raws)), "an exact redelivery of a line"
    assert {e.claim_frequency.value for e in events} == {"1", "7", "8"}


def test_the_bad_samples_are_the_ones_the_test_expects() -> None:
    assert len(ndjson_lines(SAMPLES / "bad-claim-lines.ndjson")) == len(BAD_SAMPLES)


@pytest.mark.parametrize(
    ("raw", "names"),
    list(zip(ndjson_lines(SAMPLES / "bad-claim-lines.ndjson"), BAD_SAMPLES, strict=True)),
    ids=[case for case, _ in BAD_SAMPLES],
)
def test_every_bad_sample_is_refused_with_a_reason_naming_the_field(
    raw: bytes, names: tuple[str, str]
) -> None:
    outcome = decode_claim_line(raw)
    assert isinstance(outcome, Rejection)
    assert names[1] in outcome.reason


def test_the_output_topic_is_compacted_and_keyed_by_line_identity() -> None:
    specs = {spec.name: spec for spec in topic_specs(DEFAULTS)}
    output = specs[DEFAULTS.output_topic]
    assert output.cleanup_policy == "compact"
    assert output.configs["cleanup.policy"] == "compact"
    assert contract(DEFAULTS.output_topic)["cleanup_policy"] == "compact"
    assert line_key("C1001", 2) == b'["C1001",2]'
    assert orjson.loads(line_key("C 1", 12)) == ["C 1", 12]


def test_the_input_and_dead_letter_topics_delete_old_records() -> None:
    specs = {spec.name: spec for spec in topic_specs(DEFAULTS)}
    assert specs[DEFAULTS.input_topic].cleanup_policy == "delete"
    # Retention covers the state horizon, so a replay can rebuild any state it needs.
    retention_days = int(specs[DEFAULTS.input_topic].configs["retention.ms"]) / (24 * 3600 * 1000)
    assert retention_days >= DEFAULTS.horizon_days
    assert specs[DEFAULTS.dlq_topic].cleanup_policy == "delete"


def test_every_topic_has_the_settings_partition_count() -> None:
    settings = Settings.model_construct(partitions=7)
    assert {spec.partitions for spec in topic_specs(settings)} == {7}


def test_client_kwargs_for_a_plaintext_broker_name_only_the_servers_and_protocol() -> None:
    settings = Settings.model_construct(bootstrap_servers="a:9092, b:9092")
    assert kafka_client_kwargs(settings) == {
        "bootstrap_servers": ["a:9092", "b:9092"],
        "security_protocol": "PLAINTEXT",
    }


def test_client_kwargs_for_sasl_ssl_carry_the_credentials_and_a_verifying_ssl_context() -> None:
    settings = Settings.model_construct(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="edits",
        sasl_password=SecretStr("secret"),
    )
    kwargs = kafka_client_kwargs(settings)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("edits", "secret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_dead_letters_carry_the_input_bytes_with_their_context_in_headers() -> None:
    dlq = contract(DEFAULTS.dlq_topic)
    assert "value_schema" not in dlq and "bytes" in dlq["value"]
    headers = dlq["headers_schema"]["properties"]
    for name in ("topic", "partition", "offset", "exception.class.name", "exception.message"):
        assert f"__connect.errors.{name}" in headers
    assert {"stream-edits.reason", "stream-edits.errors", "stream-edits.failed_at"} <= set(headers)


def test_every_topic_takes_what_the_worker_writes_to_it() -> None:
    settings = Settings.model_construct(max_message_bytes=200_000)
    limits = {s.name: int(s.configs["max.message.bytes"]) for s in topic_specs(settings)}
    assert limits[settings.input_topic] == limits[settings.output_topic] == 200_000
    # A dead letter is its input record whole plus headers.
    assert limits[settings.dlq_topic] == settings.dlq_max_message_bytes > 200_000
    assert settings.producer_max_request_bytes > settings.dlq_max_message_bytes
    assert settings.producer_batch_bytes <= min(limits.values())
    assert settings.member_state_max_bytes < 200_000


def distinct_events(lines: list[bytes]) -> set[bytes]:
    """Each event once, as canonical JSON with received_at in UTC (the same instant), named by
    the provider's number (the NDJSON sample's claim ids are the files' CLM01s)."""
    out = set()
    for raw in lines:
        event = ClaimLineEvent.model_validate_json(raw)
        utc = event.model_copy(update={"received_at": event.received_at.astimezone(UTC)})
        fields = utc.model_dump(mode="json")
        if fields.pop("billing_provider") is not None:
            fields["claim_id"] = fields.pop("patient_control_number")
        else:
            del fields["patient_control_number"]
        out.add(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    return out


@pytest.mark.parametrize(
    ("name", "input_format"),
    [("claim-lines.837p", "x12-837p"), ("claim-lines.fhir.json", "fhir-claim")],
)
def test_the_837p_and_fhir_samples_hold_exactly_the_claims_of_the_ndjson_sample(
    name: str, input_format: str
) -> None:
    converted = read_claims(str(SAMPLES / name), input_format)

    assert converted.rejections == []
    assert distinct_events(list(converted.lines)) == distinct_events(
        ndjson_lines(SAMPLES / "claim-lines.ndjson")
    )


def test_every_denial_carries_its_x12_adjustment_codes_valid_under_the_output_schema() -> None:
    schema = contract(DEFAULTS.output_topic)["value_schema"]
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    decisions = final_decisions(ndjson_lines(SAMPLES / "claim-lines.ndjson"), load_rules())
    denials = [d.to_wire() for d in decisions if d.status == "deny"]

    assert {e["code"] for d in denials for e in d["edits"]} == {
        "MUE_EXCEEDED",
        "ADDON_WITHOUT_PRIMARY",
        "PTP_BUNDLED",
    }
    for denial in denials:
        validator.validate(denial)
        assert all(e["adjustment"]["group_code"] == "CO" for e in denial["edits"])
    adjustment = schema["$defs"]["Edit"]["properties"]["adjustment"]
    assert "CARC" in adjustment["description"] and "RARC" in adjustment["description"]


def test_the_contract_files_ship_in_the_package() -> None:
    """setuptools' build_py (what a wheel is made of) copies every topics/*.json into
    stream_edits/contract/, and an installed or editable package finds them there."""
    import subprocess
    import sys
    import tempfile

    from stream_edits.kafka.topics import PACKAGED_CONTRACT_DIR

    names = sorted(contract_files())
    assert names and sorted(p.name for p in PACKAGED_CONTRACT_DIR.glob("*.json")) == names
    repo = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as build:
        subprocess.run(
            [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py"]
            + ["--build-lib", build],
            cwd=repo,
            check=True,
            capture_output=True,
        )
        built = Path(build) / "stream_edits" / "contract"
        assert sorted(p.name for p in built.iterdir()) == names
        for name in names:
            assert not (built / name).is_symlink()
            assert (built / name).read_bytes() == (CONTRACT_DIR / name).read_bytes()


def test_every_decision_names_its_cause_and_each_denying_edit_its_related_lines() -> None:
    schema = contract(DEFAULTS.output_topic)["value_schema"]
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert schema["$defs"]["Edit"]["properties"]["related_lines"]["items"] == {
        "$ref": "#/$defs/LineRef"
    }
    assert set(schema["$defs"]["LineRef"]["required"]) == {"claim_id", "line_number"}
    changed_by = schema["$defs"]["ChangedBy"]["properties"]
    assert {"integer", "null"} == {t["type"] for t in changed_by["line_number"]["anyOf"]}
    decisions = final_decisions(ndjson_lines(SAMPLES / "claim-lines.ndjson"), load_rules())
    wires = [d.to_wire() for d in decisions]
    for wire in wires:
        validator.validate(wire)
    related = [r for w in wires for e in w["edits"] for r in e["related_lines"]]
    assert related and all(set(r) == {"claim_id", "line_number"} for r in related)
    # Voided by a void event (no line number) and by a replacement's line.
    voided_by = {
        c["line_number"] is None for w in wires if w["status"] == "void" for c in [w["changed_by"]]
    }
    assert voided_by == {True, False}
