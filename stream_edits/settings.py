"""One settings object for every command, read from STREAM_EDITS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

HEADER_ROOM_BYTES = 64 * 1024
STATE_ROOM_BYTES = 16 * 1024


def default_home() -> Path:
    """Where the project keeps caches and local data outside the repository."""
    return Path.home() / ".cache" / "stream-edits"


class Settings(BaseSettings):
    """Configuration of the worker, the CLI and the local broker (env prefix STREAM_EDITS_)."""

    model_config = SettingsConfigDict(env_prefix="STREAM_EDITS_", frozen=True)

    # Kafka connection
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None

    # Topics (names defined once, here)
    input_topic: str = "claim-lines"
    output_topic: str = "claim-edits"
    dlq_topic: str = "claim-lines-dlq"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # How long claim-lines keeps records: what a replay can still reach. The default covers the
    # state horizon (400 days) with a month to spare.
    input_retention_days: int = Field(default=430, ge=1)
    # The largest record claim-lines and claim-edits accept (their max.message.bytes). The
    # dead-letter and repartition topics take this plus HEADER_ROOM_BYTES (a refused or
    # forwarded record keeps its bytes and gains headers); the producer's requests this plus
    # twice that room; a member's stored record stays STATE_ROOM_BYTES under it.
    max_message_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)

    # Faust worker
    app_id: str = "stream-edits"
    store: str = "rocksdb://"
    data_dir: Path = Field(default_factory=lambda: default_home() / "worker")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # The URL other workers reach this one's web server at (Faust's canonical_url, advertised in
    # the group's assignment for routing look-ups); default http://{web_host}:{web_port}. Set it
    # when web_host is 0.0.0.0 or not the name other workers resolve.
    web_url: str | None = None
    # The bearer token of the look-ups (/members/..., /lines/...: protected health information).
    # Unset, they answer 403 (disabled). At least 16 characters (checked by the worker at start,
    # stream_edits/web/auth.py, so no error message ever shows it); never logged.
    web_token: SecretStr | None = None
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    horizon_days: int = Field(default=400, ge=1)
    # The decide task takes whatever input has queued up, at most batch_max events at a time.
    batch_max: int = Field(default=2000, ge=1)
    # Producer linger: sends wait up to this long to fill a batch. The processor appends a whole
    # batch's messages before it flushes, so its requests are full without waiting.
    producer_linger_ms: float = Field(default=0.0, ge=0)
    # Largest record batch per partition in one produce request (Faust's default is 16 KiB: a
    # batch's decisions then take dozens of sequential requests). Keep under the broker's
    # message.max.bytes.
    producer_max_batch_bytes: int = Field(default=512 * 1024, ge=1024)
    # Members whose decoded records stay cached between batches (beyond those with state still
    # on its way to the changelog). Saves decoding hot members (~7% CPU with the whole bench
    # population cached) but every cached object lengthens Python's full garbage collections
    # (122 ms pauses measured with 14k members): 0 keeps tail latency low.
    member_cache: int = Field(default=0, ge=0)
    # A killed worker holds its partitions until this times out (Faust's default is 60 s).
    session_timeout_s: float = Field(default=10.0, gt=0)
    rules_dir: Path | None = None
    # Compiled rule sets of large rules directories, by content digest; workers on one host that
    # share it map one copy (docs/rule-tables.md).
    rules_cache_dir: Path = Field(default_factory=lambda: default_home() / "rules")

    # Local broker (`stream-edits kafka ...`)
    kafka_version: str = "4.4.0"
    kafka_home: Path = Field(default_factory=lambda: default_home() / "kafka")
    kafka_data_dir: Path = Field(default_factory=lambda: default_home() / "kafka-data")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "-Xms256m -Xmx1g"

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
