"""The benchmark's reference pipelines, each run in its own process by the bench runner.

    python -m stream_edits_dev.bench.pipelines raw   --bootstrap H:P --source IN --sink OUT --group
    G
    python -m stream_edits_dev.bench.pipelines faust --bootstrap H:P --source IN --sink OUT --group
    G

`raw` is the client's ceiling: aiokafka getmany → orjson.loads → producer.send, nothing else.
`faust` is the framework's baseline: a Faust pass-through agent with default settings. Both
forward each message's key and headers (the runner stamps its line index in a header) to the
input's partition. The real processor runs as `python -m stream_edits worker`, configured through
STREAM_EDITS_* variables.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

if TYPE_CHECKING:
    import faust

RAW_MAX_RECORDS = 5000
RAW_LINGER_MS = 5
RAW_MAX_BATCH_BYTES = 512 * 1024


def client_security() -> dict[str, Any]:
    """The clients' security settings (TLS, SASL) from STREAM_EDITS_*, as the runner passes its
    environment on; nothing to add for PLAINTEXT."""
    from stream_edits.kafka.topics import kafka_client_kwargs
    from stream_edits.settings import Settings

    kwargs = kafka_client_kwargs(Settings())
    del kwargs["bootstrap_servers"]
    return kwargs


async def raw_pipeline(bootstrap: str, source: str, sink: str, group: str) -> None:
    """Consume `source`, parse every value, produce it unchanged to `sink` until SIGTERM."""
    servers = bootstrap.split(",")
    consumer = AIOKafkaConsumer(
        source,
        **client_security(),
        bootstrap_servers=servers,
        group_id=group,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        **client_security(),
        bootstrap_servers=servers,
        linger_ms=RAW_LINGER_MS,
        max_batch_size=RAW_MAX_BATCH_BYTES,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=RAW_MAX_RECORDS)
            for tp, records in batches.items():
                for record in records:
                    orjson.loads(record.value)
                    # Not awaiting delivery: the producer batches (linger) like any real client.
                    await producer.send(
                        sink,
                        record.value,
                        key=record.key,
                        partition=tp.partition,
                        headers=list(record.headers),
                    )
        # Offsets auto-commit every 5 s; a ceiling does not pay for at-least-once bookkeeping.
    finally:
        await consumer.stop()
        await producer.stop()


def faust_app(
    bootstrap: str, source: str, sink: str, app_id: str, datadir: Path, web_port: int
) -> faust.App:
    """A Faust app with one pass-through agent, Faust's default settings otherwise."""
    import faust

    from stream_edits.runtime.app import broker_credentials
    from stream_edits.settings import Settings

    app = faust.App(
        app_id,
        broker=[f"kafka://{host}" for host in bootstrap.split(",")],
        broker_credentials=broker_credentials(Settings()),
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        web_host="127.0.0.1",
        web_port=web_port,
        autodiscover=False,
    )
    inbound = app.topic(source)
    outbound = app.topic(sink)

    @app.agent(inbound, name="passthrough")
    async def passthrough(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await outbound.send(key=event.key, value=event.value, headers=event.headers)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run one reference pipeline until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m stream_edits_dev.bench.pipelines")
    parser.add_argument("kind", choices=["raw", "faust"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--group", required=True, help="consumer group (Faust: the app id)")
    parser.add_argument("--datadir", type=Path, default=Path("."))
    parser.add_argument("--web-port", type=int, default=6066)
    args = parser.parse_args(argv)
    if args.kind == "raw":
        asyncio.run(raw_pipeline(args.bootstrap, args.source, args.sink, args.group))
        return 0
    import faust

    app = faust_app(args.bootstrap, args.source, args.sink, args.group, args.datadir, args.web_port)
    faust.Worker(app, loglevel="warning").execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
