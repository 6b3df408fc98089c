"""One settings object for every command, read from STREAM_EDITS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # True when producers key claim-lines by member_id; False re-keys through an internal topic.
    input_keyed_by_member: bool = True

    # Faust worker
    app_id: str = "stream-edits"
    store: str = "rocksdb://"
    data_dir: Path = Field(default_factory=lambda: default_home() / "worker")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
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

    # Local broker (`stream-edits kafka ...`)
    kafka_version: str = "4.4.0"
    kafka_home: Path = Field(default_factory=lambda: default_home() / "kafka")
    kafka_data_dir: Path = Field(default_factory=lambda: default_home() / "kafka-data")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "-Xms256m -Xmx1g"
