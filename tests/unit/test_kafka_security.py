"""The local broker's sasl_ssl mode without a broker: its properties, its CA and certificate (with
a real TLS handshake in memory), SCRAM material, the users' settings files and their modes."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import re
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from stream_edits.settings import Settings
from stream_edits_dev.broker import local, security, tls
from stream_edits_dev.broker.local import BrokerPaths
from stream_edits_dev.broker.security import SecurityError, SecurityFiles


def parse(properties: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in properties.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(kafka_data_dir=tmp_path / "data", kafka_port=29092, kafka_controller_port=29093)


@pytest.fixture(scope="module")
def issued() -> tls.Issued:
    return tls.issue()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- server.properties ----------------------------------------------------------------------


def secured_properties(settings: Settings, password: str = "broker-secret") -> dict[str, str]:
    files = SecurityFiles.of(settings.kafka_data_dir)
    extra = security.render_properties(settings, files, password)
    return parse(local.render_server_properties(settings, Path("/d/kraft"), extra))


def test_sasl_ssl_listens_for_clients_on_sasl_ssl_only_and_the_broker_uses_it_too(
    settings: Settings,
) -> None:
    props = secured_properties(settings)
    assert props["listeners"] == "SASL_SSL://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:29092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_PLAINTEXT", "")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    jaas = props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert jaas.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required ")
    assert 'username="kafka-broker" password="broker-secret";' in jaas


def test_the_controller_listener_needs_the_brokers_plain_password(settings: Settings) -> None:
    props = secured_properties(settings, "s3cret")
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    jaas = props["listener.name.controller.plain.sasl.jaas.config"]
    assert 'username="kafka-broker" password="s3cret" user_kafka-broker="s3cret";' in jaas


def test_acls_are_enforced_with_the_broker_and_admin_as_super_users(settings: Settings) -> None:
    props = secured_properties(settings)
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:kafka-broker;User:admin"


def test_tls_uses_pem_stores_in_the_data_dir(settings: Settings) -> None:
    props = secured_properties(settings)
    root = settings.kafka_data_dir / "security"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str(root / "broker.pem")
    assert props["ssl.truststore.location"] == str(root / "ca.pem")
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert "ssl.key.password" not in props  # the key is unencrypted in a 0600 file


def test_plaintext_properties_are_unchanged_by_the_security_mode(settings: Settings) -> None:
    plain = parse(local.render_server_properties(settings, Path("/d/kraft")))
    assert plain["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert plain["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert not any(key.startswith(("sasl.", "ssl.", "authorizer", "super.")) for key in plain)
    secured = secured_properties(settings)
    # Everything but the listener, SASL, TLS and authorizer entries is shared.
    for key in ("process.roles", "log.dirs", "offsets.topic.replication.factor"):
        assert secured[key] == plain[key]


# --- the CA and the certificate --------------------------------------------------------------


def test_the_certificate_is_signed_by_the_ca_for_localhost_and_127_0_0_1(
    issued: tls.Issued,
) -> None:
    ca = x509.load_pem_x509_certificate(issued.ca_pem)
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    cert.verify_directly_issued_by(ca)  # raises unless the CA's key signed it
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_key_belongs_to_the_certificate_and_the_keystore_holds_key_and_chain(
    issued: tls.Issued,
) -> None:
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert key.public_key() == cert.public_key()
    assert issued.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka reads
    store = issued.keystore_pem
    assert store.count(b"-----BEGIN CERTIFICATE-----") == 2
    assert store.index(b"PRIVATE KEY") < store.index(b"CERTIFICATE")


def test_the_certificate_is_valid_now_and_for_two_years(issued: tls.Issued) -> None:
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now
    assert cert.not_valid_after_utc - now > datetime.timedelta(days=800)


def test_two_issues_make_two_cas(issued: tls.Issued) -> None:
    assert tls.issue().ca_pem != issued.ca_pem


def handshake(issued: tls.Issued, tmp_path: Path, server_name: str, ca_pem: bytes) -> None:
    """A TLS handshake in memory: a server with the keystore, a client trusting `ca_pem` and
    checking `server_name` as Python clients (aiokafka) do."""
    keystore, ca = tmp_path / "broker.pem", tmp_path / "ca.pem"
    keystore.write_bytes(issued.keystore_pem)
    ca.write_bytes(ca_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(keystore)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_a_python_client_trusting_the_ca_completes_a_handshake(
    issued: tls.Issued, tmp_path: Path, server_name: str
) -> None:
    handshake(issued, tmp_path, server_name, issued.ca_pem)


def test_a_client_trusting_another_ca_or_asking_another_name_is_refused(
    issued: tls.Issued, tmp_path: Path
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(issued, tmp_path, "127.0.0.1", tls.issue().ca_pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(issued, tmp_path, "broker.example.com", issued.ca_pem)


def test_private_files_are_0600_from_the_start_and_stay_so(tmp_path: Path) -> None:
    path = tmp_path / "secret.pem"
    tls.write_private(path, b"one")
    assert mode_of(path) == 0o600
    path.chmod(0o644)
    tls.write_private(path, b"two")
    assert mode_of(path) == 0o600 and path.read_bytes() == b"two"


# --- SCRAM ----------------------------------------------------------------------------------


def test_salted_passwords_follow_rfc_7677() -> None:
    """RFC 7677's SCRAM-SHA-256 example: the client proof from its salted password."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = security.salted_password("SCRAM-SHA-256", "pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = (
        f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    )
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth.encode(), "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


def test_format_time_users_carry_no_password_on_the_command_line() -> None:
    argument = security.storage_scram_argument("SCRAM-SHA-512", "admin", "hunter2-hunter2")
    assert "hunter2" not in argument
    match = re.fullmatch(
        r'SCRAM-SHA-512=\[name=admin,iterations=8192,salt="([^"]+)",saltedpassword="([^"]+)"\]',
        argument,
    )
    assert match is not None
    salt, salted = (base64.b64decode(group) for group in match.groups())
    assert len(salt) == 32
    assert salted == hashlib.pbkdf2_hmac("sha512", b"hunter2-hunter2", salt, 8192)


def test_a_new_user_is_upserted_with_the_brokers_mechanism_and_iterations() -> None:
    from confluent_kafka.admin import ScramMechanism

    upsertion = security.scram_upsertion("bob", "SCRAM-SHA-512", "pw")
    assert upsertion.user == "bob"
    assert upsertion.scram_credential_info.mechanism == ScramMechanism.SCRAM_SHA_512
    assert upsertion.scram_credential_info.iterations == 8192
    assert upsertion.password == b"pw"
    assert upsertion.salt is None  # the AdminClient salts it: a new salt per credential
    sha256 = security.scram_upsertion("bob", "SCRAM-SHA-256", "pw").scram_credential_info
    assert sha256.mechanism == ScramMechanism.SCRAM_SHA_256


def test_passwords_are_long_random_and_safe_in_jaas_quotes() -> None:
    passwords = {security.new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == 32
        assert re.fullmatch(r"[A-Za-z0-9_-]+", password)


@pytest.mark.parametrize("name", ["", "a,b", "x=y", "-lead", "with space", "é"])
def test_user_names_scram_or_the_storage_tool_would_misread_are_refused(name: str) -> None:
    with pytest.raises(SecurityError):
        security.check_user_name(name)


# --- the users' settings files, the mode of a data dir ---------------------------------------


def test_a_users_settings_file_sources_in_a_shell_and_reads_back(tmp_path: Path) -> None:
    ca = tmp_path / "dir with space" / "ca.pem"
    text = security.render_env("127.0.0.1:9092", "alice", "p@ss'word", ca)
    path = tmp_path / "alice.env"
    path.write_text(text)
    env = security.read_env(path)
    assert env == {
        "STREAM_EDITS_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "STREAM_EDITS_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAM_EDITS_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAM_EDITS_SASL_USERNAME": "alice",
        "STREAM_EDITS_SASL_PASSWORD": "p@ss'word",
        "STREAM_EDITS_SSL_CAFILE": str(ca),
    }
    s = security.user_settings(Settings(), env)
    assert (s.sasl_username, s.ssl_cafile) == ("alice", ca)
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == "p@ss'word"
    assert "p@ss'word" not in repr(s)  # a SecretStr, like the web token


def test_prepare_issues_the_files_once_with_private_modes(settings: Settings) -> None:
    paths = BrokerPaths.of(settings)
    first = security.prepare(settings, paths)
    files = first.files
    assert mode_of(files.root) == 0o700 and mode_of(files.users) == 0o700
    for path in (files.keystore, files.env_file("admin"), files.env_file("kafka-broker")):
        assert mode_of(path) == 0o600, path
    assert first.admin.sasl_username == "admin"
    assert first.admin.bootstrap_servers == "127.0.0.1:29092"
    assert first.admin.ssl_cafile == files.ca
    assert len(first.scram_arguments) == 2
    admin_password = security.read_env(files.env_file("admin"))["STREAM_EDITS_SASL_PASSWORD"]
    assert admin_password not in str(first.properties)  # only the broker's own is there
    ca = files.ca.read_bytes()
    again = security.prepare(settings, paths)  # a restart: same CA, same passwords
    assert files.ca.read_bytes() == ca
    assert again.properties == first.properties
    assert again.admin.sasl_password is not None
    assert again.admin.sasl_password.get_secret_value() == admin_password


def test_a_data_dir_keeps_the_mode_it_was_formatted_in(settings: Settings) -> None:
    paths = BrokerPaths.of(settings)
    assert security.choose_mode(paths, None) == "plaintext"  # nothing formatted yet
    assert security.choose_mode(paths, "sasl_ssl") == "sasl_ssl"
    paths.kraft_dir.mkdir(parents=True)
    (paths.kraft_dir / "meta.properties").write_text("cluster.id=abc\n")
    assert security.choose_mode(paths, None) == "plaintext"
    with pytest.raises(SecurityError, match="formatted with --security plaintext; add --fresh"):
        security.choose_mode(paths, "sasl_ssl")
    security.prepare(settings, paths)
    assert security.choose_mode(paths, None) == "sasl_ssl"
    with pytest.raises(SecurityError, match="--security sasl_ssl"):
        security.choose_mode(paths, "plaintext")


def test_admin_settings_need_a_sasl_ssl_data_dir(settings: Settings) -> None:
    with pytest.raises(SecurityError, match="not started with `kafka start --security sasl_ssl`"):
        security.admin_settings(settings)
