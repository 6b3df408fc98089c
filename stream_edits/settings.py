"""One settings object for every command, read from STREAM_EDITS_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

HEADER_ROOM_BYTES = 64 * 1024
STATE_ROOM_BYTES = 16 * 1024


class DependentIdentity(StrEnum):
    """How a dependent patient (X12 2000C, FHIR Coverage.relationship other than self) is the
    member whose edits are counted (setting STREAM_EDITS_DEPENDENT_IDENTITY)."""

    # The subscriber's id, a dot, and the dependent: FHIR Coverage.dependent, else a digest of
    # the patient's name and birth date (X12 2010CA NM1/DMG, FHIR Patient.name/birthDate).
    SUBSCRIBER_AND_PATIENT = "subscriber-and-patient"
    # The patient's own member id (payers that number every person): FHIR Coverage.identifier
    # or Patient.identifier of type MB. X12 005010 has no member id for a 2000C patient, so such
    # a claim is refused: the guide sends a patient with an id of their own as the subscriber.
    PATIENT_MEMBER_ID = "patient-member-id"


def default_home() -> Path:
    """Where the project keeps caches and local data outside the repository."""
    return Path.home() / ".cache" / "stream-edits"


class Settings(BaseSettings):
    """Configuration of the worker, the CLI and the local broker (env prefix STREAM_EDITS_)."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_EDITS_", frozen=True, use_attribute_docstrings=True
    )
    # Each field's docstring is its description: docs/operations/configuration.md is generated
    # from them (scripts/docs_tables.py).

    # Kafka connection
    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers, comma-separated."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every client connects."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (never logged nor shown in an error)."""
    ssl_cafile: Path | None = None
    """CA bundle for TLS; unset: the system's CAs."""

    # Topics (names defined once, here)
    input_topic: str = "claim-lines"
    """Topic of claim lines in."""
    output_topic: str = "claim-edits"
    """Topic of decisions out (compacted)."""
    dlq_topic: str = "claim-lines-dlq"
    """Dead-letter topic."""
    partitions: int = Field(default=4, ge=1)
    """Partitions of every topic: used by `topics create`, the tables and the start-up check."""
    replication_factor: int = Field(default=1, ge=1)
    """Replication factor of the topics `topics create` makes."""
    input_retention_days: int = Field(default=430, ge=1)
    """How long claim-lines keeps records (what a replay can still reach): the 400-day state
    horizon with a month to spare."""
    max_message_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    """The largest record claim-lines and claim-edits accept (their max.message.bytes). The
    dead-letter and repartition topics take this plus 64 KiB (a refused or forwarded record keeps
    its bytes and gains headers), the producer's requests this plus 128 KiB; a member's stored
    record stays 16 KiB under it."""

    # Faust worker
    app_id: str = "stream-edits"
    """Consumer group id and prefix of the internal topics."""
    store: str = "rocksdb://"
    """Faust table store (`memory://` in unit tests)."""
    data_dir: Path = Field(default_factory=lambda: default_home() / "worker")
    """The worker's local state (RocksDB, start count, cluster id)."""
    web_host: str = "127.0.0.1"
    """Address of the worker's web server."""
    web_port: int = 6066
    """Port of the worker's web server."""
    web_url: str | None = None
    """The URL other workers reach this one's web server at (Faust's canonical_url, advertised in
    the group's assignment for routing look-ups); default http://{web_host}:{web_port}. Set it
    when web_host is 0.0.0.0 or not the name other workers resolve."""
    web_token: SecretStr | None = None
    """The bearer token of the look-ups (protected health information). Unset, they answer 403;
    at least 16 characters (checked at start, so no error message ever shows it); never
    logged."""
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    """at_least_once or exactly_once, each with any number of workers (docs/guarantees.md)."""
    horizon_days: int = Field(default=400, ge=1)
    """Days a claim entry or patient-day is kept after its last activity (stream time)."""
    batch_max: int = Field(default=8000, ge=1)
    """The most input events the decide task takes at a time (whatever has queued up). Only a
    backlog fills a batch; the larger it is, the fewer times a member's record is read, encoded
    and stored per line (docs/performance.md)."""
    producer_linger_ms: float = Field(default=0.0, ge=0)
    """How long sends wait to fill a batch. The processor appends a whole batch's messages before
    it flushes, so its requests are full without waiting."""
    producer_max_batch_bytes: int = Field(default=512 * 1024, ge=1024)
    """Largest record batch per partition in one produce request (never above
    max_message_bytes). Faust's default, 16 KiB, takes dozens of sequential requests per
    batch."""
    member_cache: int = Field(default=10_000, ge=0)
    """Members whose decoded records stay cached between batches, the least recently written
    evicted first: a hot member's record is neither read from RocksDB and decoded nor freed
    again each batch. Each costs about 9 KiB, and the worker's collection of cyclic garbage
    (every 5 min) walks them all: 209 ms for 5,873 members. 0: only records in flight."""
    session_timeout_s: float = Field(default=10.0, gt=0)
    """How long a killed worker holds its partitions (Faust's default is 60 s)."""
    rules_dir: Path | None = None
    """Directory of rule tables with its manifest.toml; unset: the shipped defaults."""

    dependent_identity: DependentIdentity = DependentIdentity.SUBSCRIBER_AND_PATIENT
    """How X12 and FHIR intake identifies a dependent: subscriber-and-patient (the subscriber's
    id plus the dependent) or patient-member-id (the patient's own member id)."""
    rules_cache_dir: Path = Field(default_factory=lambda: default_home() / "rules")
    """Compiled rule sets of large rules directories, by content digest; workers on one host
    map one copy (docs/rule-tables.md)."""

    # Local broker (`stream-edits kafka ...`)
    kafka_version: str = "4.4.0"
    """Apache Kafka version of the local broker."""
    kafka_home: Path = Field(default_factory=lambda: default_home() / "kafka")
    """Where the local broker's Maven jars are cached."""
    kafka_data_dir: Path = Field(default_factory=lambda: default_home() / "kafka-data")
    """The local broker's data, logs and security files."""
    kafka_port: int = 9092
    """The local broker's client port."""
    kafka_controller_port: int = 9093
    """The local broker's KRaft controller port."""
    kafka_heap: str = "-Xms256m -Xmx1g"
    """JVM heap options of the local broker."""

    @property
    def dlq_max_message_bytes(self) -> int:
        """max.message.bytes of the dead-letter and repartition topics: an input record whole,
        with headers."""
        return self.max_message_bytes + HEADER_ROOM_BYTES

    @property
    def producer_max_request_bytes(self) -> int:
        """The producer's largest request: room for the largest record any topic takes."""
        return self.max_message_bytes + 2 * HEADER_ROOM_BYTES

    @property
    def producer_batch_bytes(self) -> int:
        """The producer's record batch size: a topic's max.message.bytes bounds a whole batch,
        so no batch may be larger than the smallest limit among the topics written to."""
        return min(self.producer_max_batch_bytes, self.max_message_bytes)

    @property
    def member_state_max_bytes(self) -> int:
        """The largest member record the worker stores (its changelog takes max_message_bytes)."""
        return self.max_message_bytes - STATE_ROOM_BYTES

    @property
    def repartition_topic(self) -> str:
        """The internal topic that carries lines to their member's partition."""
        return f"{self.app_id}-{self.input_topic}-repartition"
