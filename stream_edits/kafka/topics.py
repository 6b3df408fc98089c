"""The topic contract in code: names, partitions, keys, value models and configs of every topic.

`python -m stream_edits.kafka.topics` writes the contract to `topics/*.json`; `--check` exits 1
when the
checked-in files differ from what the models generate now.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel

from stream_edits.kept_json import dumps_kept
from stream_edits.models import ClaimLineEvent, DeadLetterHeaders, Decision
from stream_edits.settings import Settings

# The contract's source checkout: the top-level topics/ directory (what `main` writes).
CONTRACT_DIR = Path(__file__).resolve().parents[2] / "topics"
# The same files as installed with the package (stream_edits/contract links to topics/ and the
# wheel carries copies): what a consumer of an installed wheel reads.
PACKAGED_CONTRACT_DIR = Path(__file__).parents[1] / "contract"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class KeySpec:
    """How a topic's message keys are made."""

    encoding: Literal["utf-8", "json", "bytes"]
    description: str
    example: str | None = None


@dataclass(frozen=True)
class TopicSpec:
    """One topic: what it carries, how it is keyed and partitioned, and its broker configs."""

    name: str
    description: str
    partitions: int
    replication_factor: int
    cleanup_policy: Literal["delete", "compact"]
    key: KeySpec
    # The value's model; None when the value is another topic's record bytes, unchanged.
    value_model: type[BaseModel] | None
    # Input schemas describe what the model accepts; output schemas what it writes.
    schema_mode: Literal["validation", "serialization"]
    extra_configs: dict[str, str] = field(default_factory=dict)
    value_description: str | None = None
    headers_model: type[BaseModel] | None = None

    @property
    def configs(self) -> dict[str, str]:
        """Every topic-level config to create the topic with."""
        return {"cleanup.policy": self.cleanup_policy, **self.extra_configs}

    def value_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of the value, generated from its pydantic model."""
        if self.value_model is None:
            return None
        schema = self.value_model.model_json_schema(mode=self.schema_mode)
        return {"$schema": JSON_SCHEMA_DIALECT, **schema}

    def headers_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of the headers (one property per header name), if the topic has any."""
        if self.headers_model is None:
            return None
        schema = self.headers_model.model_json_schema(mode="serialization", by_alias=True)
        return {"$schema": JSON_SCHEMA_DIALECT, **schema}

    def contract(self) -> dict[str, Any]:
        """The JSON document `topics/<name>.json` holds for this topic."""
        key: dict[str, Any] = {"encoding": self.key.encoding, "description": self.key.description}
        if self.key.example is not None:
            key["example"] = self.key.example
        document: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "partitions": self.partitions,
            "cleanup_policy": self.cleanup_policy,
            "configs": self.configs,
            "key": key,
        }
        if self.value_description is not None:
            document["value"] = self.value_description
        if self.value_model is not None:
            document["value_schema"] = self.value_schema()
        if self.headers_model is not None:
            document["headers_schema"] = self.headers_schema()
        return document


def line_key(claim_id: str, line_number: int) -> bytes:
    """The `claim-edits` key of a line: compact JSON `["<claim_id>",<line_number>]`."""
    return dumps_kept([claim_id, line_number])


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The input, output and dead-letter topics, named and sized by `settings`."""
    common: dict[str, Any] = {
        "partitions": settings.partitions,
        "replication_factor": settings.replication_factor,
    }
    line_bytes = str(settings.max_message_bytes)
    return [
        TopicSpec(
            name=settings.input_topic,
            description="Claim lines in: service lines of original and replacement claims, "
            "and voids. Raw JSON bytes, one event per message.",
            cleanup_policy="delete",
            key=KeySpec(
                encoding="bytes",
                description="Anything, or null: any producer and partitioner may write here. "
                "member_id as UTF-8 with Kafka's default (murmur2) partitioner puts a line on "
                "its member's partition at once; any other placement costs one hop through the "
                "worker's repartition topic.",
                example="M10001",
            ),
            value_model=ClaimLineEvent,
            schema_mode="validation",
            # Retention covers the state horizon: a replay can rebuild any state it needs.
            extra_configs={
                "retention.ms": str(settings.input_retention_days * DAY_MS),
                "max.message.bytes": line_bytes,
            },
            **common,
        ),
        TopicSpec(
            name=settings.output_topic,
            description="Decisions out: the latest decision of every claim line, with its "
            "failed edits and their rule sources.",
            # Compaction keeps at least the newest decision per line key for ever, so the topic
            # is a table of current decisions; the broker refuses null keys on compacted topics.
            cleanup_policy="compact",
            key=KeySpec(
                encoding="json",
                description='The line identity as compact JSON ["<claim_id>",<line_number>].',
                example=line_key("C1001", 2).decode(),
            ),
            value_model=Decision,
            schema_mode="serialization",
            extra_configs={"max.message.bytes": line_bytes},
            **common,
        ),
        TopicSpec(
            name=settings.dlq_topic,
            description="Dead letters, as Kafka Connect writes them: each input record that got "
            "no decision, its key and value bytes unchanged, why and where in headers.",
            cleanup_policy="delete",
            key=KeySpec(
                encoding="bytes",
                description="The input record's key bytes as received (null when it had none).",
            ),
            value_model=None,
            value_description="The input record's value bytes as received (null stays null, "
            "empty stays empty).",
            headers_model=DeadLetterHeaders,
            schema_mode="serialization",
            extra_configs={"max.message.bytes": str(settings.dlq_max_message_bytes)},
            **common,
        ),
    ]


def kafka_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection kwargs for every aiokafka client (producer, consumer, admin) of the project."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",")],
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        password = settings.sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        # Imported here so the contract above loads without the Kafka client.
        from aiokafka.errors import KafkaConfigurationError
        from aiokafka.helpers import create_ssl_context

        # Without a CA file the system's default CAs verify the broker.
        try:
            kwargs["ssl_context"] = create_ssl_context(cafile=settings.ssl_cafile)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            reason = getattr(error, "strerror", None) or error
            raise KafkaConfigurationError(
                f"cannot use STREAM_EDITS_SSL_CAFILE={settings.ssl_cafile}: {reason}"
            ) from error
    return kwargs


def contract_files(settings: Settings | None = None) -> dict[str, bytes]:
    """File name -> content of every `topics/*.json`, for the shipped default settings."""
    # model_construct takes the declared defaults and ignores STREAM_EDITS_* in the environment.
    specs = topic_specs(settings or Settings.model_construct())
    return {
        f"{spec.name}.json": orjson.dumps(spec.contract(), option=orjson.OPT_INDENT_2) + b"\n"
        for spec in specs
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write `topics/*.json`, or with `--check` exit 1 when they differ from the models."""
    parser = argparse.ArgumentParser(
        prog="python -m stream_edits.kafka.topics", description=main.__doc__
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = 0
    for name, content in contract_files().items():
        path = CONTRACT_DIR / name
        current = path.read_bytes() if path.is_file() else None
        if current == content:
            continue
        if args.check:
            stale += 1
            print(f"{path}: differs from the models", file=sys.stderr)
        else:
            path.write_bytes(content)
            print(f"wrote {path}", file=sys.stderr)
    if stale:
        print("regenerate with: python -m stream_edits.kafka.topics", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
