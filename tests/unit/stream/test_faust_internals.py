"""The Faust and aiokafka internals `stream/transport.py`, `stream/faust_compat.py`,
`stream/cache.py` and `stream/delivery.py` override or call: each must still exist with the
parameters the project relies on. A failure names the method; re-test the graft against the new
version before changing the expectation (and the pins in pyproject.toml)."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

# (owner, attribute, the parameters the project passes or overrides, excluding self)
GRAFTS = [
    # transport.py: BatchingConsumer overrides these
    (faust_aiokafka.Consumer, "_wait_next_records", ["timeout"]),
    (faust_aiokafka.Consumer, "_new_offset", ["tp"]),
    (faust_aiokafka.Consumer, "_filter_tps_with_pending_acks", ["topics"]),
    (faust_aiokafka.Consumer, "wait_empty", []),
    (faust_aiokafka.Consumer, "on_partitions_assigned", ["assigned", "generation_id"]),
    # faust_compat.py: the RocksDB partition databases and the producer behind Faust's
    (RocksDBStore, "_db_for_partition", ["partition"]),
    (faust_aiokafka.Producer, "_ensure_producer", []),
    # cache.py: persisted changelog offsets, as Faust writes them after a changelog send
    (RocksDBStore, "set_persisted_offset", ["tp", "offset"]),
    (TableManager, "persist_offset_on_commit", ["store", "tp", "offset"]),
    # delivery.py: record batches on the aiokafka producer
    (AIOKafkaProducer, "create_batch", []),
    (AIOKafkaProducer, "send_batch", ["batch", "topic", "partition"]),
    (BatchBuilder, "append", ["timestamp", "key", "value", "headers"]),
]


@pytest.mark.parametrize(
    ("owner", "name", "parameters"),
    GRAFTS,
    ids=[f"{owner.__module__}.{owner.__qualname__}.{name}" for owner, name, _ in GRAFTS],
)
def test_the_internal_still_exists_with_the_parameters_we_rely_on(
    owner: type, name: str, parameters: list[str]
) -> None:
    where = f"{owner.__module__}.{owner.__qualname__}.{name}"
    assert hasattr(owner, name), f"{where} is gone: the graft that uses it must be redone"
    found = [p for p in inspect.signature(getattr(owner, name)).parameters if p != "self"]
    assert found == parameters, f"{where} changed its parameters: {found} (was {parameters})"


def test_the_consumer_attributes_the_inbox_reads_are_still_there() -> None:
    assert "flow_active" in dir(FaustConsumer), "faust Consumer.flow_active is gone"
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer, (
        "faust's aiokafka Transport no longer names its consumer class in `Consumer`"
    )


@pytest.mark.parametrize(("package", "minor"), [("faust-streaming", "0.15"), ("aiokafka", "0.14")])
def test_the_installed_versions_are_the_ones_tested(package: str, minor: str) -> None:
    assert version(package).startswith(minor + "."), (
        f"{package} {version(package)} is not the tested {minor}.x: run the suite and the "
        "kill tests, then move the pin in pyproject.toml"
    )
