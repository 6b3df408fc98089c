"""The producers of a chaos run, as payers' systems would publish claim lines:

- `keyed`: aiokafka keyed by member_id with its murmur2 partitioner, acks=all, idempotent (what
  `stream-edits produce` does);
- `unkeyed`: aiokafka without keys, partitions in turn (round robin), acks=1;
- `claim-key`: aiokafka keyed by claim_id (the wrong key: murmur2 of it), acks=all;
- `librdkafka`: confluent-kafka keyed by member_id with librdkafka's default partitioner
  (CRC32: another partition than Java's for the same key), when confluent-kafka is installed.

`feed` hands a step's records to them at a steady rate, then waits until every one is
acknowledged; a record whose send failed (the broker was away too long) is sent again, which may
store it twice (an exact redelivery, as real producers' retries make).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from stream_edits.jobs.produce import member_key
from stream_edits.kafka.topics import kafka_client_kwargs
from stream_edits.settings import Settings
from stream_edits_dev.chaos.inputs import Record
from stream_edits_dev.chaos.verify import Deliveries

SEND_ROUNDS = 6  # attempts per record before the run gives up
ROUND_PAUSE_S = 2.0
FLUSH_TIMEOUT_S = 120.0

Sent = tuple[Record, int, int]  # record, partition, offset


class DeliveryError(Exception):
    """Records could not be delivered after every attempt."""


class Producer(Protocol):
    """What the feeder needs of a producer."""

    name: str
    last_error: str  # why the last failed send failed

    async def start(self) -> None: ...

    async def send(self, record: Record) -> None: ...

    async def drain(self) -> tuple[list[Sent], list[Record]]: ...

    async def restart(self) -> None: ...

    async def stop(self) -> None: ...


def _member_key(record: Record) -> bytes | None:
    return None if record.value is None else member_key(record.value)


def _claim_key(record: Record) -> bytes | None:
    if record.value is None:
        return None
    try:
        doc = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return None
    claim = doc.get("claim_id") if isinstance(doc, dict) else None
    return claim.encode() if isinstance(claim, str) else None


class AiokafkaProducer:
    """An aiokafka producer with its own keys and placement."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        key: Callable[[Record], bytes | None],
        round_robin: bool = False,
        **config: Any,
    ) -> None:
        self.name = name
        self.settings = settings
        self.key = key
        self.round_robin = round_robin
        self.config = config
        self.producer: AIOKafkaProducer | None = None
        self.pending: list[tuple[Record, asyncio.Future[Any]]] = []
        self.failed: list[Record] = []
        self.turn = 0
        self.last_error = ""

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **kafka_client_kwargs(self.settings),
            max_request_size=self.settings.producer_max_request_bytes,
            **self.config,
        )
        await producer.start()
        self.producer = producer

    async def send(self, record: Record) -> None:
        assert self.producer is not None
        partition = None
        if self.round_robin:
            partition = self.turn % self.settings.partitions
            self.turn += 1
        key = self.key(record)
        if key is None and record.value is None:
            key = b"null-%d" % record.index  # aiokafka sends no record without key and value
        try:
            future = await self.producer.send(
                self.settings.input_topic, record.value, key=key, partition=partition
            )
        except Exception as error:  # the broker away for longer than the request timeout, ...
            self.failed.append(record)
            self.last_error = f"{type(error).__name__}: {error}"
            return
        self.pending.append((record, future))

    async def drain(self) -> tuple[list[Sent], list[Record]]:
        pending, self.pending = self.pending, []
        failed, self.failed = self.failed, []
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        sent = []
        for (record, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(record)
                self.last_error = f"{type(result).__name__}: {result}"
            else:
                sent.append((record, result.partition, result.offset))
        return sent, failed

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            # A producer that lost its broker may fail to flush: its records are sent again.
            with contextlib.suppress(Exception):
                await producer.stop()


class LibrdkafkaProducer:
    """A confluent-kafka (librdkafka) producer keyed by member_id, default partitioner."""

    name = "librdkafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Any = None
        self.sent: list[Sent] = []
        self.failed: list[Record] = []
        self.last_error = ""

    async def start(self) -> None:
        from confluent_kafka import Producer as Rdkafka

        from stream_edits.kafka.confluent import client_config

        self.producer = Rdkafka(
            {
                **client_config(self.settings),
                "acks": "all",
                "linger.ms": 5,
                "message.max.bytes": self.settings.producer_max_request_bytes,
                "message.timeout.ms": int(FLUSH_TIMEOUT_S * 1000),
                # Its connection errors while the broker is killed are expected; a record it
                # cannot deliver is still reported (and sent again).
                "log_level": 0,
            }
        )

    def _report(self, record: Record, error: Any, message: Any) -> None:
        if error is None:
            self.sent.append((record, message.partition(), message.offset()))
        else:
            self.failed.append(record)
            self.last_error = str(error)

    async def send(self, record: Record) -> None:
        while True:
            try:
                self.producer.produce(
                    self.settings.input_topic,
                    value=record.value,
                    key=_member_key(record),
                    on_delivery=partial(self._report, record),
                )
                break
            except BufferError:  # its queue is full: let deliveries drain it
                await asyncio.to_thread(self.producer.poll, 0.1)
        self.producer.poll(0)

    async def drain(self) -> tuple[list[Sent], list[Record]]:
        left = await asyncio.to_thread(self.producer.flush, FLUSH_TIMEOUT_S)
        sent, self.sent = self.sent, []
        failed, self.failed = self.failed, []
        if left:
            raise DeliveryError(f"librdkafka kept {left} records queued for {FLUSH_TIMEOUT_S} s")
        return sent, failed

    async def restart(self) -> None:
        pass  # librdkafka reconnects and retries by itself

    async def stop(self) -> None:
        if self.producer is not None:
            await asyncio.to_thread(self.producer.flush, 10)
            self.producer = None


def librdkafka_available() -> bool:
    """True when confluent-kafka (librdkafka) can be imported."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


def make_producers(settings: Settings) -> dict[str, Producer]:
    """The run's producers by name (librdkafka only when installed)."""
    producers: dict[str, Producer] = {
        "keyed": AiokafkaProducer(
            "keyed", settings, _member_key, acks="all", enable_idempotence=True, linger_ms=5
        ),
        "unkeyed": AiokafkaProducer("unkeyed", settings, lambda _: None, round_robin=True, acks=1),
        "claim-key": AiokafkaProducer("claim-key", settings, _claim_key, acks="all", linger_ms=20),
    }
    if librdkafka_available():
        producers["librdkafka"] = LibrdkafkaProducer(settings)
    return producers


def producer_versions() -> dict[str, str]:
    """The client libraries the producers run on."""
    import aiokafka

    versions = {"aiokafka": str(aiokafka.__version__)}
    if librdkafka_available():
        import confluent_kafka

        version, lib = confluent_kafka.version(), confluent_kafka.libversion()
        versions["confluent_kafka"] = str(version[0] if isinstance(version, tuple) else version)
        versions["librdkafka"] = str(lib[0] if isinstance(lib, tuple) else lib)
    return versions


async def feed(
    records: list[Record],
    producers: dict[str, Producer],
    rate: float,
    deliveries: Deliveries,
    strike_at: int | None = None,
    strike: Callable[[], None] | None = None,
) -> int:
    """Hand `records` to their producers at `rate` records a second, calling `strike` when
    record `strike_at` is next; return once every record is acknowledged (sending failed ones
    again). The number of sends that had to be repeated."""
    began = time.monotonic()
    for i, record in enumerate(records):
        if i == strike_at and strike is not None:
            strike()
        delay = began + i / rate - time.monotonic()
        if delay > 0.005:
            await asyncio.sleep(delay)
        await producers[record.producer].send(record)
    if strike_at is not None and strike_at >= len(records) and strike is not None:
        strike()
    return await _settle_sends(producers, deliveries)


async def _settle_sends(producers: dict[str, Producer], deliveries: Deliveries) -> int:
    resent = 0
    for attempt in range(SEND_ROUNDS):
        failed: list[tuple[Producer, Record]] = []
        for producer in producers.values():
            sent, lost = await producer.drain()
            for record, partition, offset in sent:
                deliveries.add(record, partition, offset)
            failed += [(producer, record) for record in lost]
        if not failed:
            return resent
        if attempt == SEND_ROUNDS - 1:
            break
        resent += len(failed)
        await asyncio.sleep(ROUND_PAUSE_S)
        for producer in {p.name: p for p, _ in failed}.values():
            await producer.restart()
        for producer, record in failed:
            await producer.send(record)
    what = "; ".join(
        f"record {record.index} ({record.kind}) by {producer.name}: {producer.last_error}"
        for producer, record in failed[:3]
    )
    raise DeliveryError(f"{len(failed)} records not delivered after {SEND_ROUNDS} attempts: {what}")
