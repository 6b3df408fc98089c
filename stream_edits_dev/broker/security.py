"""The local broker's `--security sasl_ssl` mode: TLS, SCRAM users and ACLs enforced.

Listener layout (one node, broker and controller):

- `SASL_SSL://127.0.0.1:KAFKA_PORT`, the only listener clients reach: TLS with a certificate
  from a CA generated into the data directory, SCRAM-SHA-512 logins. The broker talks to itself
  over it too (inter-broker traffic: transaction markers), as the `kafka-broker` user.
- `CONTROLLER://127.0.0.1:KAFKA_CONTROLLER_PORT`, loopback only, SASL_PLAINTEXT with PLAIN:
  SCRAM credentials live in the metadata the controller serves, so they cannot guard its own
  listener; PLAIN with a password in server.properties does, where a PLAINTEXT listener would
  have to make ANONYMOUS a super user.
- Kafka's StandardAuthorizer with `allow.everyone.if.no.acl.found=false`: a principal may do
  only what an ACL grants it. Super users: `kafka-broker` and `admin`.

Files, under `<data dir>/security/` (mode 0700; every file with a secret 0600):

- `ca.pem` — the CA certificate clients trust (STREAM_EDITS_SSL_CAFILE); not a secret;
- `broker.pem` — the broker's private key and certificate chain (Kafka's PEM key store);
- `users/<name>.env` — one per user: the STREAM_EDITS_* settings that connect as it, password
  included (`. users/admin.env` in a shell). Created for `admin` and `kafka-broker` at
  format time, for others by `stream-edits kafka users add NAME`.

The broker keeps only salted SCRAM keys; passwords are chosen here (`secrets`, 192 bits) and
handed to `kafka-storage format` as salt and salted password, never on a command line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from stream_edits.refusal import Refused
from stream_edits.settings import Settings
from stream_edits_dev.broker import tls

if TYPE_CHECKING:
    from confluent_kafka.admin import UserScramCredentialUpsertion

    from stream_edits_dev.broker.local import BrokerPaths

Mode = Literal["plaintext", "sasl_ssl"]
MODES: tuple[Mode, ...] = ("plaintext", "sasl_ssl")
MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "kafka-broker"
ADMIN_USER = "admin"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
REQUEST_TIMEOUT_S = 15.0
SCRAM_DIGESTS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_ITERATIONS = 8192  # Kafka's default; it accepts 4096 to 16384
# SCRAM user names: no ',' or '=' (SCRAM escapes them, kafka-storage's --add-scram cannot).
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class SecurityError(Refused):
    """A security set-up step failed; the CLI prints it as one line."""


@dataclass(frozen=True)
class SecurityFiles:
    """Where the CA, the broker's key store and the users' settings live."""

    root: Path

    @classmethod
    def of(cls, data_dir: Path) -> SecurityFiles:
        return cls(data_dir.expanduser() / "security")

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.root / "broker.pem"

    @property
    def users(self) -> Path:
        return self.root / "users"

    def env_file(self, user: str) -> Path:
        return self.users / f"{user}.env"


def check_user_name(name: str) -> str:
    """`name` when it can be a SCRAM user here, else SecurityError."""
    if not _USER_NAME.fullmatch(name):
        raise SecurityError(
            f"user name {name!r} is not allowed: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 100 characters"
        )
    return name


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits), safe inside JAAS quotes."""
    return secrets.token_urlsafe(24)


# --- SCRAM ----------------------------------------------------------------------------------


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802: Hi(password, salt, i), i.e. PBKDF2-HMAC). Brokers keep
    keys derived from it; the password itself never leaves the machine that chose it."""
    return hashlib.pbkdf2_hmac(SCRAM_DIGESTS[mechanism], password.encode(), salt, iterations)


def storage_scram_argument(
    mechanism: str, name: str, password: str, salt: bytes | None = None
) -> str:
    """`kafka-storage format --add-scram` for a user, given as salt and salted password: the
    password does not appear on the command line (which `ps` shows to every local user)."""
    salt = salt or secrets.token_bytes(32)
    salted = salted_password(mechanism, password, salt, SCRAM_ITERATIONS)
    b64 = base64.b64encode
    return (
        f"{mechanism}=[name={name},iterations={SCRAM_ITERATIONS},"
        f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
    )


def scram_upsertion(name: str, mechanism: str, password: str) -> UserScramCredentialUpsertion:
    """Create or replace user `name`'s SCRAM credential (AlterUserScramCredentials); the
    AdminClient salts and hashes the password before it is sent."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], SCRAM_ITERATIONS)
    return UserScramCredentialUpsertion(name, info, password.encode())


# --- users' settings files -----------------------------------------------------------------


def render_env(bootstrap: str, user: str, password: str, ca: Path) -> str:
    """The settings file of a user: `export STREAM_EDITS_...=...` lines a shell can source."""
    values = {
        "STREAM_EDITS_BOOTSTRAP_SERVERS": bootstrap,
        "STREAM_EDITS_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAM_EDITS_SASL_MECHANISM": MECHANISM,
        "STREAM_EDITS_SASL_USERNAME": user,
        "STREAM_EDITS_SASL_PASSWORD": password,
        "STREAM_EDITS_SSL_CAFILE": str(ca),
    }
    lines = [
        f"# stream-edits settings for User:{user} on the local broker (SASL_SSL, {MECHANISM}).",
        "# Secret: keep this file 0600. In a shell: . THIS_FILE (then run stream-edits).",
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def read_env(path: Path) -> dict[str, str]:
    """The variables a settings file written by render_env sets."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            values[key] = value
    return values


def user_settings(settings: Settings, env: Mapping[str, str]) -> Settings:
    """`settings` with the connection of a user's settings file."""
    return settings.model_copy(
        update={
            "bootstrap_servers": env["STREAM_EDITS_BOOTSTRAP_SERVERS"],
            "security_protocol": env["STREAM_EDITS_SECURITY_PROTOCOL"],
            "sasl_mechanism": env["STREAM_EDITS_SASL_MECHANISM"],
            "sasl_username": env["STREAM_EDITS_SASL_USERNAME"],
            "sasl_password": SecretStr(env["STREAM_EDITS_SASL_PASSWORD"]),
            "ssl_cafile": Path(env["STREAM_EDITS_SSL_CAFILE"]),
        }
    )


def local_bootstrap(settings: Settings) -> str:
    from stream_edits_dev.broker.local import HOST

    return f"{HOST}:{settings.kafka_port}"


def admin_settings(settings: Settings) -> Settings:
    """Settings that connect to the local broker as its `admin` super user."""
    files = SecurityFiles.of(settings.kafka_data_dir)
    path = files.env_file(ADMIN_USER)
    if not path.is_file():
        raise SecurityError(
            f"no admin credentials at {path}: the local broker at "
            f"{local_bootstrap(settings)} was not started with `kafka start --security sasl_ssl`"
        )
    env = read_env(path)
    return user_settings(
        settings, {**env, "STREAM_EDITS_BOOTSTRAP_SERVERS": local_bootstrap(settings)}
    )


def _write_user(files: SecurityFiles, settings: Settings, user: str, password: str) -> Path:
    path = files.env_file(user)
    text = render_env(local_bootstrap(settings), user, password, files.ca)
    files.users.mkdir(parents=True, exist_ok=True, mode=0o700)
    tls.write_private(path, text.encode())
    return path


# --- the broker's side ---------------------------------------------------------------------


def recorded_mode(paths: BrokerPaths) -> Mode | None:
    """The mode the data dir's cluster was formatted in; None when it holds none yet."""
    from stream_edits_dev.broker.local import cluster_id_of

    if cluster_id_of(paths.kraft_dir) is None:
        return None
    return "sasl_ssl" if SecurityFiles.of(paths.data_dir).ca.is_file() else "plaintext"


def choose_mode(paths: BrokerPaths, requested: Mode | None) -> Mode:
    """The mode to start in: the data dir's own, which `requested` may not contradict."""
    recorded = recorded_mode(paths)
    if recorded is None:
        return requested or "plaintext"
    if requested is not None and requested != recorded:
        raise SecurityError(
            f"{paths.data_dir} holds a cluster formatted with --security {recorded}; "
            f"add --fresh to wipe it and start with --security {requested}"
        )
    return recorded


@dataclass(frozen=True)
class BrokerSecurity:
    """What the start of a sasl_ssl broker needs: its properties, its format-time users and the
    settings that reach it as admin."""

    properties: dict[str, str]
    scram_arguments: list[str]
    admin: Settings
    files: SecurityFiles


def _password_of(files: SecurityFiles, settings: Settings, user: str) -> str:
    """The user's password from its settings file, made (and written) when there is none."""
    path = files.env_file(user)
    if path.is_file():
        return read_env(path)["STREAM_EDITS_SASL_PASSWORD"]
    password = new_password()
    _write_user(files, settings, user, password)
    return password


def prepare(settings: Settings, paths: BrokerPaths) -> BrokerSecurity:
    """Issue the CA and the broker's certificate and choose the super users' passwords, unless
    the data dir has them; the broker properties and format-time users of sasl_ssl mode."""
    files = SecurityFiles.of(paths.data_dir)
    files.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(files.root, 0o700)
    if not (files.ca.is_file() and files.keystore.is_file()):
        issued = tls.issue()
        tls.write_private(files.keystore, issued.keystore_pem)
        files.ca.write_bytes(issued.ca_pem)  # public: what clients trust
    passwords = {user: _password_of(files, settings, user) for user in (BROKER_USER, ADMIN_USER)}
    scram = [
        storage_scram_argument(MECHANISM, user, password) for user, password in passwords.items()
    ]
    admin = user_settings(settings, read_env(files.env_file(ADMIN_USER)))
    admin = admin.model_copy(update={"bootstrap_servers": local_bootstrap(settings)})
    return BrokerSecurity(
        render_properties(settings, files, passwords[BROKER_USER]), scram, admin, files
    )


def render_properties(
    settings: Settings, files: SecurityFiles, broker_password: str
) -> dict[str, str]:
    """server.properties entries of sasl_ssl mode (they replace the plaintext listener's)."""
    from stream_edits_dev.broker.local import HOST

    port, cport = settings.kafka_port, settings.kafka_controller_port
    scram = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{broker_password}";'
    )
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{BROKER_USER}" password="{broker_password}" '
        f'user_{BROKER_USER}="{broker_password}";'
    )
    return {
        "listeners": f"SASL_SSL://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"SASL_SSL://{HOST}:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        # Clients and the broker itself: SCRAM over TLS.
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        # The controller listener: PLAIN, its one user in the JAAS entry.
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca),
        "ssl.client.auth": "none",
        "ssl.endpoint.identification.algorithm": "https",
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{BROKER_USER};User:{ADMIN_USER}",
    }


# --- users on a running broker -------------------------------------------------------------


async def _alter_scram(admin_settings: Settings, user: str, password: str) -> None:
    from confluent_kafka import KafkaException

    from stream_edits.kafka import confluent

    admin = confluent.admin_client(admin_settings)
    futures = admin.alter_user_scram_credentials(
        [scram_upsertion(user, MECHANISM, password)], request_timeout=REQUEST_TIMEOUT_S
    )
    try:
        await confluent.resolved(futures[user])
    except KafkaException as error:
        if confluent.error_code(error) in confluent.UNREACHABLE:
            raise confluent.as_aiokafka_error(error) from error
        reason = confluent.reason(error)
        raise SecurityError(f"the broker refused user {user}: {reason}") from None


def add_user(settings: Settings, name: str) -> Path:
    """Create SCRAM user `name` on the running local broker with a new password; the path of
    its settings file (0600). SecurityError when it exists already."""
    check_user_name(name)
    files = SecurityFiles.of(settings.kafka_data_dir)
    admin = admin_settings(settings)
    path = files.env_file(name)
    if path.exists():
        raise SecurityError(f"user {name} exists already: its settings are in {path}")
    password = new_password()
    asyncio.run(_alter_scram(admin, name, password))
    return _write_user(files, settings, name, password)


def list_users(settings: Settings) -> list[tuple[str, Path]]:
    """The users whose settings files the local broker's data dir holds."""
    files = SecurityFiles.of(settings.kafka_data_dir)
    return sorted((path.stem, path) for path in files.users.glob("*.env"))


def users_command(settings: Settings, action: str, name: str | None) -> int:
    """`stream-edits kafka users add NAME | list`: exit 0. SecurityError or Kafka's errors as they
    are (the command line words them)."""
    from stream_edits.kafka.errors import quiet_bootstrap_errors

    if action == "list":
        for user, path in list_users(settings):
            print(f"{user:<24} {path}")
        return 0
    if name is None:
        raise SecurityError("users add needs a NAME")
    with quiet_bootstrap_errors():
        path = add_user(settings, name)
    print(f"User:{name} created; its settings (secret, 0600): {path}")
    return 0
