"""Each command's arguments parse into its typed, frozen options object."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from stream_edits.cli import (
    COMMANDS,
    bench,
    build_parser,
    chaos,
    check,
    kafka,
    produce,
    reconcile,
    replay,
    rules,
    tail,
    topics,
    worker,
)
from stream_edits.kafka.acls import AclRequest
from stream_edits.runtime.replay import ReplayOptions
from stream_edits.settings import Settings
from stream_edits_dev.bench.options import BenchOptions
from stream_edits_dev.chaos.options import Config


def parsed(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_every_command_is_a_module_that_handles_its_own_arguments() -> None:
    for module in COMMANDS:
        sub = argparse.ArgumentParser().add_subparsers()
        module.add_parser(sub)
        name = module.__name__.rsplit(".", 1)[1]
        assert list(sub.choices) == [name]
        assert sub.choices[name].get_default("handler") is module.handle
    assert build_parser().parse_args(["worker"]).handler is worker.handle


def test_check_and_produce_read_the_input_format() -> None:
    args = parsed("check", "in.x12", "--format", "x12-837p", "--rules", "r", "--received-at", "T")
    assert check.options(args) == check.CheckOptions(
        file="in.x12", rules=Path("r"), input_format="x12-837p", received_at="T"
    )
    args = parsed("produce", "-", "--no-progress")
    assert produce.options(args) == produce.ProduceOptions(file="-", progress=False)


def test_tail_worker_topics_and_reconcile_options() -> None:
    assert tail.options(parsed("tail", "--json", "--dlq", "--limit", "3")) == tail.TailOptions(
        as_json=True, dlq=True, limit=3
    )
    assert worker.options(parsed("worker")) == worker.WorkerOptions("warning")
    assert topics.options(parsed("topics", "create")) == topics.TopicsOptions("create")
    chosen = reconcile.options(parsed("reconcile", "a", "b", "--json", "r.json"))
    assert chosen == reconcile.ReconcileOptions("a", "b", json_path=Path("r.json"), limit=50)


def test_replay_options_name_the_archives_in_order_and_the_window() -> None:
    args = parsed(
        "replay", "--output-topic", "t", "--file", "b.ndjson", "a.ndjson", "--no-progress"
    )
    assert replay.options(args) == ReplayOptions(
        output_topic="t", files=(Path("b.ndjson"), Path("a.ndjson")), progress=False
    )
    args = parsed("replay", "--output-topic", "t", "--from", "0:5", "--until", "2026-01-01T00:00Z")
    chosen = replay.options(args)
    assert (chosen.start, chosen.until, chosen.files, chosen.json) == (
        "0:5", "2026-01-01T00:00Z", (), False
    )  # fmt: skip


def test_kafka_actions_parse_into_their_own_options() -> None:
    assert kafka.options(parsed("kafka", "start", "--fresh")) == kafka.BrokerOptions(
        "start", fresh=True
    )
    assert kafka.options(parsed("kafka", "status")) == kafka.BrokerOptions("status")
    assert kafka.options(parsed("kafka", "users", "add", "bob")) == kafka.UsersOptions("add", "bob")
    args = parsed("kafka", "acls", "--role", "replay", "--principal", "User:r", "--prefixed")
    assert kafka.options(args) == AclRequest("replay", "User:r", prefixed=True)


def test_rules_actions_parse_into_their_own_options() -> None:
    assert rules.options(parsed("rules", "compile")) == rules.CompileOptions()
    args = parsed("rules", "generate", "out", "--ptp-rows", "10")
    assert rules.options(args) == rules.GenerateOptions(Path("out"), ptp_rows=10)


def test_the_bench_parser_and_its_options_have_the_same_defaults() -> None:
    assert bench.options(parsed("bench")) == BenchOptions()
    args = parsed("bench", "--processor-env", "A=1", "--processor-env", "B=2")
    assert bench.options(args).processor_env == ("A=1", "B=2")


def test_the_chaos_parser_and_its_config_have_the_same_defaults() -> None:
    settings = Settings()
    assert chaos.options(parsed("chaos"), settings) == Config.checked(settings)


@pytest.mark.parametrize(
    "chosen",
    [
        check.CheckOptions("f"),
        tail.TailOptions(),
        ReplayOptions("t"),
        BenchOptions(),
        AclRequest("worker", "User:w"),
        rules.CompileOptions(),
    ],
)
def test_options_are_frozen(chosen: Any) -> None:
    field = dataclasses.fields(chosen)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(chosen, field, None)
