"""Producers nobody here wrote: Kafka's console producer and librdkafka (confluent-kafka).

Payers publish claim lines with their own clients; these put records on a topic the same way,
with those clients' own partitioners.
"""

from __future__ import annotations

import os
import subprocess
import zlib

from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError, Message, Producer

from stream_edits.settings import Settings
from stream_edits_dev.broker.local import find_java, tools_classpath

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
ROUND_ROBIN = "org.apache.kafka.clients.producer.RoundRobinPartitioner"
SEPARATORS = (b"\t", b"|", b"\x1f")
TIMEOUT_S = 120.0


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Where the Java client, aiokafka and Faust put a keyed record."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    """Where librdkafka's default partitioner (consistent_random) puts a non-empty key."""
    return zlib.crc32(key) % partitions


def _separator(lines: list[bytes], keys: list[bytes]) -> bytes:
    """A key separator that occurs in no line and no key."""
    for sep in SEPARATORS:
        if not any(sep in item for item in [*lines, *keys]):
            return sep
    raise ValueError(f"every candidate key separator {SEPARATORS!r} occurs in the data")


def _console_input(
    settings: Settings, topic: str, lines: list[bytes], round_robin: bool, keys: list[bytes] | None
) -> tuple[list[str], bytes]:
    """The console producer's command line and standard input for these lines."""
    if any(b"\n" in line for line in lines):
        raise ValueError("the console producer reads one record per line: a line holds b'\\n'")
    cmd = [
        find_java(os.environ), "-Xmx256m", "-cp", tools_classpath(settings), CONSOLE_PRODUCER,
        "--bootstrap-server", settings.bootstrap_servers, "--topic", topic,
        # Each send waits for its acknowledgement, so a lost line makes the tool exit 1
        # (asynchronous sends only log the error and exit 0); no linger (1 s by default) each.
        "--sync", "--timeout", "0",
    ]  # fmt: skip
    if keys is None:
        if round_robin:
            cmd += ["--producer-property", f"partitioner.class={ROUND_ROBIN}"]
        return cmd, b"".join(line + b"\n" for line in lines)
    if len(keys) != len(lines):
        raise ValueError(f"{len(keys)} keys for {len(lines)} lines")
    sep = _separator(lines, keys)
    cmd += ["--property", "parse.key=true", "--property", f"key.separator={sep.decode()}"]
    return cmd, b"".join(key + sep + line + b"\n" for key, line in zip(keys, lines, strict=True))


def console_produce(
    settings: Settings,
    topic: str,
    lines: list[bytes],
    *,
    round_robin: bool = True,
    keys: list[bytes] | None = None,
) -> None:
    """Publish lines with Kafka's console producer; returns once every line is acknowledged.

    Unkeyed lines go round-robin over the partitions (the default partitioner when round_robin
    is false); with keys, the Java client's murmur2 partitioner places them.
    """
    cmd, stdin = _console_input(settings, topic, lines, round_robin, keys)
    done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise RuntimeError(f"the console producer exited {done.returncode}:\n{output}")


def librdkafka_produce(bootstrap: str, topic: str, lines: list[bytes], keys: list[bytes]) -> None:
    """Publish keyed lines with librdkafka's default partitioner; raise unless all are delivered."""
    if len(keys) != len(lines):
        raise ValueError(f"{len(keys)} keys for {len(lines)} lines")
    failures: list[str] = []
    delivered: list[Message] = []

    def report(error: KafkaError | None, message: Message) -> None:
        if error is None:
            delivered.append(message)
        else:
            failures.append(f"{message.key()!r}: {error}")

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, line in zip(keys, lines, strict=True):
        producer.produce(topic, value=line, key=key, on_delivery=report)
    undelivered = producer.flush(TIMEOUT_S)
    if failures or undelivered or len(delivered) != len(lines):
        raise RuntimeError(
            f"librdkafka delivered {len(delivered)} of {len(lines)} lines "
            f"({undelivered} still queued): {'; '.join(failures[:5])}"
        )
