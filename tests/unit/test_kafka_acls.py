"""The least ACLs per role: exactly which bindings each role gets, what the worker's start-up check
asks for, the wire codes, and `kafka acls --dry-run` (no broker)."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AclBinding

from stream_edits import cli
from stream_edits.kafka import acls
from stream_edits.kafka.acls import AclError, Binding
from stream_edits.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings.model_construct(app_id="se")  # defaults, whatever the environment says


def table(bindings: list[Binding]) -> set[tuple[str, str, str, str]]:
    return {(b.resource, b.pattern, b.name, b.operation) for b in bindings}


def test_the_worker_reads_its_input_writes_its_outputs_and_owns_its_internal_topics(
    settings: Settings,
) -> None:
    assert table(acls.role_bindings("worker", settings)) == {
        ("topic", "literal", "claim-lines", "Read"),
        ("topic", "literal", "claim-lines", "DescribeConfigs"),
        ("topic", "literal", "claim-edits", "Write"),
        ("topic", "literal", "claim-edits", "DescribeConfigs"),
        ("topic", "literal", "claim-lines-dlq", "Write"),
        ("topic", "literal", "claim-lines-dlq", "DescribeConfigs"),
        ("topic", "prefixed", "se-", "Create"),
        ("topic", "prefixed", "se-", "Read"),
        ("topic", "prefixed", "se-", "Write"),
        ("topic", "prefixed", "se-", "DescribeConfigs"),
        ("group", "literal", "se", "Read"),
    }


def test_exactly_once_adds_the_transactional_ids_faust_uses(settings: Settings) -> None:
    eos = settings.model_copy(update={"processing_guarantee": "exactly_once"})
    extra = table(acls.role_bindings("worker", eos)) - table(acls.role_bindings("worker", settings))
    assert extra == {("transactional-id", "prefixed", "se-", "Write")}


def test_producer_reader_and_admin_get_one_topic_or_three(settings: Settings) -> None:
    assert table(acls.role_bindings("producer", settings)) == {
        ("topic", "literal", "claim-lines", "Write")
    }
    assert table(acls.role_bindings("reader", settings)) == {
        ("topic", "literal", "claim-edits", "Read")
    }
    assert table(acls.role_bindings("reader", settings, group="billing")) == {
        ("topic", "literal", "claim-edits", "Read"),
        ("group", "literal", "billing", "Read"),
    }
    admin = table(acls.role_bindings("admin", settings))
    assert {op for *_, op in admin} == {"Create", "Describe"}
    assert {name for _, _, name, _ in admin} == {"claim-lines", "claim-edits", "claim-lines-dlq"}


def test_replay_reads_history_and_creates_and_writes_its_own_output(settings: Settings) -> None:
    assert table(acls.role_bindings("replay", settings, output_topic="audit")) == {
        ("topic", "literal", "claim-lines", "Read"),
        ("topic", "literal", "audit", "Create"),
        ("topic", "literal", "audit", "Write"),
        ("topic", "literal", "audit-dlq", "Create"),
        ("topic", "literal", "audit-dlq", "Write"),
    }
    prefixed = table(acls.role_bindings("replay", settings, output_topic="audit-", prefixed=True))
    assert ("topic", "prefixed", "audit-", "Create") in prefixed
    with pytest.raises(AclError, match="--output-topic"):
        acls.role_bindings("replay", settings)


def test_the_worker_check_asks_for_the_operations_its_bindings_grant(settings: Settings) -> None:
    needs = acls.worker_topic_needs(settings)
    assert needs == {
        "claim-lines": ["Read", "DescribeConfigs"],
        "claim-edits": ["Write", "DescribeConfigs"],
        "claim-lines-dlq": ["Write", "DescribeConfigs"],
        "se-claim-lines-repartition": ["Create", "Read", "Write", "DescribeConfigs"],
        "se-members-changelog": ["Create", "Read", "Write", "DescribeConfigs"],
    }


def wire(binding: AclBinding) -> tuple[int, str, int, str, str, int, int]:
    """A binding as Kafka's codes (org.apache.kafka.common.acl, resource)."""
    return (
        binding.restype.value,
        binding.name,
        binding.resource_pattern_type.value,
        binding.principal,
        binding.host,
        binding.operation.value,
        binding.permission_type.value,
    )


def test_bindings_go_on_the_wire_with_kafkas_codes() -> None:
    topic = Binding("topic", "se-", "prefixed", "DescribeConfigs")
    # ResourceType TOPIC=2, PatternType PREFIXED=4, AclOperation DESCRIBE_CONFIGS=10, ALLOW=3
    assert wire(topic.acl("User:w")) == (2, "se-", 4, "User:w", "*", 10, 3)
    group = Binding("group", "se", "literal", "Read")
    assert wire(group.acl("User:w")) == (3, "se", 3, "User:w", "*", 3, 3)
    txn = Binding("transactional-id", "se-", "prefixed", "Write")
    assert wire(txn.acl("User:w"))[0] == 5 and wire(txn.acl("User:w"))[5] == 4
    cluster = Binding("cluster", "kafka-cluster", "literal", "IdempotentWrite")
    assert wire(cluster.acl("User:w"))[0] == 4 and wire(cluster.acl("User:w"))[5] == 12


def test_prefixed_bindings_cover_names_that_start_with_them() -> None:
    binding = Binding("topic", "se-", "prefixed", "Read")
    assert binding.matches("topic", "se-members-changelog")
    assert not binding.matches("topic", "claim-lines")
    assert not binding.matches("group", "se-x")
    assert Binding("topic", "a", "literal", "Read").matches("topic", "a")
    assert not Binding("topic", "a", "literal", "Read").matches("topic", "ab")


def test_a_principal_must_read_type_colon_name() -> None:
    assert acls.check_principal("User:alice") == "User:alice"
    for wrong in ("alice", "User:", ":alice"):
        with pytest.raises(AclError):
            acls.check_principal(wrong)


def test_kafka_acls_dry_run_prints_the_bindings_without_a_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_EDITS_INPUT_TOPIC", "lines-in")
    argv = ["kafka", "acls", "--role", "producer", "--principal", "User:feeder", "--dry-run"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "would set 1 ACLs of role producer for User:feeder:"
    assert out[1].split()[:4] == ["User:feeder", "ALLOW", "Write", "topic:literal:lines-in"]


def test_kafka_acls_refuses_a_bad_principal_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["kafka", "acls", "--role", "reader", "--principal", "feeder", "--dry-run"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        "stream-edits kafka acls: --principal 'feeder' is not TYPE:NAME, e.g. User:alice\n"
    )


def test_kafka_start_takes_a_security_mode_and_keeps_fresh() -> None:
    args = cli.build_parser().parse_args(["kafka", "start", "--fresh", "--security", "sasl_ssl"])
    assert (args.action, args.fresh, args.security) == ("start", True, "sasl_ssl")
    plain = cli.build_parser().parse_args(["kafka", "start"])
    assert (plain.fresh, plain.security) == (False, None)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["kafka", "start", "--security", "ssl"])


def acl_table() -> list[str]:
    """The least-ACL table of docs/security.md, from role_bindings: one row per role and
    resource (operations together), with the default settings' names; exactly_once's rows too."""
    s = Settings.model_construct(processing_guarantee="exactly_once")
    examples: dict[acls.Role, dict[str, str]] = {
        "reader": {"group": "<group>"},
        "replay": {"output_topic": "<output>"},
    }
    rows = ["| role | resource | pattern | operations | why |", "|---|---|---|---|---|"]
    for role in acls.ROLES:
        grouped: dict[tuple[str, str, str, str], list[str]] = {}
        for b in acls.role_bindings(role, s, **examples.get(role, {})):  # type: ignore[arg-type]
            grouped.setdefault((b.resource, b.name, b.pattern, b.why), []).append(b.operation)
        for n, ((resource, name, pattern, why), ops) in enumerate(grouped.items()):
            who = f"**{role}**" if n == 0 else ""
            rows.append(f"| {who} | {resource} `{name}` | {pattern} | {', '.join(ops)} | {why} |")
    return rows


def test_the_acl_table_of_the_security_docs_is_the_one_the_code_makes() -> None:
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "security.md"
    lines = docs.read_text().splitlines()
    table = acl_table()
    start = lines.index(table[0])
    assert lines[start : start + len(table)] == table, "\n".join(table)
    assert not lines[start + len(table)].startswith("|")  # no row the code does not make


class FakeAclAdmin:
    """create_acls as confluent-kafka's AdminClient answers it: a future per binding."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.created: list[AclBinding] = []

    def create_acls(self, bindings: list[AclBinding], **options: object) -> dict[object, object]:
        import concurrent.futures

        futures: dict[object, object] = {}
        for n, binding in enumerate(bindings):
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            if self.error is not None and n == 1:
                future.set_exception(self.error)
            else:
                self.created.append(binding)
                future.set_result(None)
            futures[binding] = future
        return futures


async def test_create_sends_every_binding_and_names_the_refused_ones(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka.errors import KafkaConnectionError
    from confluent_kafka import KafkaError, KafkaException

    from stream_edits.kafka import confluent

    bindings = acls.role_bindings("reader", settings, group="billing")
    fine = FakeAclAdmin(None)
    monkeypatch.setattr(confluent, "admin_client", lambda _settings: fine)
    await acls.create(settings, "User:r", bindings)
    assert [wire(b)[:4] for b in fine.created] == [
        (2, "claim-edits", 3, "User:r"),
        (3, "billing", 3, "User:r"),
    ]

    refusal = KafkaException(KafkaError(KafkaError.INVALID_REQUEST, "no such principal type"))
    monkeypatch.setattr(confluent, "admin_client", lambda _settings: FakeAclAdmin(refusal))
    with pytest.raises(AclError) as caught:
        await acls.create(settings, "User:r", bindings)
    assert str(caught.value) == "the broker refused: Read on group billing: no such principal type"

    away = KafkaException(KafkaError(KafkaError._TRANSPORT))
    monkeypatch.setattr(confluent, "admin_client", lambda _settings: FakeAclAdmin(away))
    with pytest.raises(KafkaConnectionError, match="bootstrap"):  # explain() probes for why
        await acls.create(settings, "User:r", bindings)
