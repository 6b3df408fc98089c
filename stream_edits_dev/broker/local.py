"""A local single-node Apache Kafka broker (KRaft) run from jars that Maven resolves."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_edits.log_safety import silenced
from stream_edits.settings import Settings

if TYPE_CHECKING:
    from stream_edits_dev.broker.security import Mode

HOST = "127.0.0.1"
MIN_JAVA = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
STATUS_STOPPED = 3

_DIR_MARKER = ".stream-edits-kafka"
_START_MARKER = "=== stream-edits: starting Kafka"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r" (ERROR|FATAL) |^Caused by: |^[\w.$]+(Exception|Error)(: |$)")


class BrokerError(Exception):
    """A failure the CLI reports as one line (plus detail lines) and exit code 1."""


@dataclass(frozen=True)
class BrokerPaths:
    """Where the jar cache and the broker's files live."""

    version_dir: Path
    data_dir: Path

    @classmethod
    def of(cls, settings: Settings) -> BrokerPaths:
        """The paths for these settings."""
        home = settings.kafka_home.expanduser()
        return cls(home / settings.kafka_version, settings.kafka_data_dir.expanduser())

    @property
    def pom(self) -> Path:
        return self.version_dir / "pom.xml"

    @property
    def lib(self) -> Path:
        return self.version_dir / "lib"

    @property
    def resolved_marker(self) -> Path:
        """Written only after a complete resolve; holds the hash of the POM it resolved."""
        return self.version_dir / ".resolved"

    @property
    def tools_pom(self) -> Path:
        return self.version_dir / "tools-pom.xml"

    @property
    def tools_lib(self) -> Path:
        """The jars of Kafka's command-line tools that lib does not hold."""
        return self.version_dir / "tools-lib"

    @property
    def tools_resolved_marker(self) -> Path:
        return self.version_dir / ".tools-resolved"

    @property
    def kraft_dir(self) -> Path:
        """Kafka's log.dirs: partitions and the KRaft metadata log."""
        return self.data_dir / "kraft"

    @property
    def server_properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.data_dir / "log4j2.xml"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"


# --- pure parts ----------------------------------------------------------------------------


def render_pom(kafka_version: str, template: str = "kafka-pom.xml") -> str:
    """A POM template for this version; the default's runtime dependencies are the broker's."""
    text = resources.files(__package__).joinpath(template).read_text("utf-8")
    return text.replace("@KAFKA_VERSION@", kafka_version)


def render_server_properties(
    settings: Settings, kraft_dir: Path, security: Mapping[str, str] | None = None
) -> str:
    """server.properties for one node that is both broker and controller; `security` replaces
    the PLAINTEXT listener's entries (security.render_properties, for `--security sasl_ssl`)."""
    port, cport = settings.kafka_port, settings.kafka_controller_port
    props: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        # Static voters: re-read at every start, so a changed controller port needs no re-format.
        "controller.quorum.voters": f"1@{HOST}:{cport}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(kraft_dir),
        "num.partitions": 1,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        "auto.create.topics.enable": "true",
        # One node: the internal topics must fit on it, or group commits and transactions fail.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        # A lone consumer should get its partitions at once, not after the default 3 s wait.
        "group.initial.rebalance.delay.ms": 0,
        "num.network.threads": 2,
        "num.io.threads": 4,
    }
    props.update(security or {})
    lines = ["# Written by `stream-edits kafka start`; rewritten at every start."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of a UUID, not starting with '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def parse_java_major(version_output: str) -> int | None:
    """The major version in `java -version` output: 17 for "17.0.15", 8 for "1.8.0_392"."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when a listening socket could not be bound to host:port (something else holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Kafka binds with SO_REUSEADDR too, so connections in TIME_WAIT do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_ports_free(settings: Settings) -> None:
    """Raise BrokerError naming the first of the broker's ports that is already taken."""
    for what, port, var in (
        ("broker", settings.kafka_port, "STREAM_EDITS_KAFKA_PORT"),
        ("controller", settings.kafka_controller_port, "STREAM_EDITS_KAFKA_CONTROLLER_PORT"),
    ):
        if port_in_use(port):
            raise BrokerError(
                f"{what} port {HOST}:{port} is already in use by another process "
                f"(not a broker started from {settings.kafka_data_dir}); "
                f"stop it or choose another port with {var}"
            )


def find_executable(name: str, environ: Mapping[str, str], hint: str) -> str:
    """The path of `name` on environ's PATH, or BrokerError with an install hint."""
    found = shutil.which(name, path=environ.get("PATH", os.defpath))
    if found is None:
        raise BrokerError(f"`{name}` not found on PATH; {hint}")
    return found


def find_java(environ: Mapping[str, str]) -> str:
    """$JAVA_HOME/bin/java when set, else `java` on PATH."""
    java_home = environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return find_executable(
        "java", environ, f"install a Java {MIN_JAVA}+ runtime (e.g. openjdk-17-jre-headless)"
    )


def maven_errors(output: str, keep: int = 12) -> list[str]:
    """The last [ERROR] lines of Maven's output (all last lines when it printed none)."""
    lines = [_ANSI.sub("", line).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    noise = (
        "[ERROR] -> [Help",
        "[ERROR] [Help",
        "[ERROR] Re-run Maven",
        "[ERROR] To see the full stack trace",
        "[ERROR] For more information",
    )
    errors = [e.removesuffix(" -> [Help 1]") for e in errors if not e.startswith(noise)]
    errors = [e for e in errors if e != "[ERROR]"]
    return (errors or lines)[-keep:]


# --- processes and files -------------------------------------------------------------------


def _say(message: str) -> None:
    """Progress for the person at the terminal (stderr; stdout keeps the final status line)."""
    with contextlib.suppress(BrokenPipeError):  # a closed terminal must not abandon a start
        print(f"kafka: {message}", file=sys.stderr, flush=True)


def java_version(java: str) -> int:
    """The major version of this java, or BrokerError when it is older than MIN_JAVA."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"could not run `{java} -version`: {exc}") from exc
    major = parse_java_major(out.stderr + out.stdout)
    if major is None:
        raise BrokerError(f"could not read the version of {java}")
    if major < MIN_JAVA:
        raise BrokerError(f"Kafka 4.x needs Java {MIN_JAVA}+, but {java} is Java {major}")
    return major


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two starts do not resolve or format at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _MavenJob:
    """One `copy-dependencies` into lib, redone only when the marker's digest is stale."""

    artifact: str  # group:artifact:version, whose jar proves the resolve complete
    pom: Path
    pom_text: str
    lib: Path
    marker: Path
    digest: str  # of every POM the resolve reads
    provided: Path | None = None  # jars also found here are dropped from lib

    @property
    def proof(self) -> str:
        _, artifact, version = self.artifact.split(":")
        return f"{artifact}-{version}.jar"

    def is_done(self) -> bool:
        return (
            self.marker.exists()
            and self.marker.read_text().strip() == self.digest
            and (self.lib / self.proof).exists()
        )


def _digest(*poms: str) -> str:
    return hashlib.sha256("".join(poms).encode()).hexdigest()


def _run_maven(mvn: str, job: _MavenJob, environ: Mapping[str, str]) -> None:
    """Copy the POM's runtime dependencies into job.lib; BrokerError with Maven's errors."""
    cmd = [
        mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(job.pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={job.lib}", "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env=dict(environ), timeout=1800
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Maven did not resolve {job.artifact} within 30 minutes") from exc
    if done.returncode != 0 or not (job.lib / job.proof).exists():
        detail = "\n".join(maven_errors(done.stdout + done.stderr))
        raise BrokerError(
            f"Maven could not resolve {job.artifact} (exit {done.returncode}):\n{detail}"
        )


def _resolve(job: _MavenJob, environ: Mapping[str, str]) -> None:
    """Resolve job.lib with Maven unless it is already complete for these POMs."""
    with _locked(job.pom.parent / ".lock"):
        if job.is_done():
            return
        mvn = find_executable(
            "mvn", environ, "install Apache Maven 3.6+ (e.g. apt-get install maven)"
        )
        job.marker.unlink(missing_ok=True)
        shutil.rmtree(job.lib, ignore_errors=True)
        job.pom.write_text(job.pom_text)
        _say(f"resolving {job.artifact} jars with Maven (first run only)")
        began = time.monotonic()
        _run_maven(mvn, job, environ)
        if job.provided is not None:
            for jar in job.lib.glob("*.jar"):
                if (job.provided / jar.name).exists():
                    jar.unlink()
        job.marker.write_text(job.digest + "\n")
        jars = len(list(job.lib.glob("*.jar")))
        _say(f"resolved {jars} jars in {time.monotonic() - began:.1f} s into {job.lib}")


def resolve_jars(settings: Settings, environ: Mapping[str, str]) -> Path:
    """Kafka's runtime classpath directory, resolved with Maven unless already complete."""
    paths = BrokerPaths.of(settings)
    pom = render_pom(settings.kafka_version)
    artifact = f"org.apache.kafka:kafka_2.13:{settings.kafka_version}"
    job = _MavenJob(artifact, paths.pom, pom, paths.lib, paths.resolved_marker, _digest(pom))
    _resolve(job, environ)
    return paths.lib


def tools_classpath(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """`java -cp` for Kafka's command-line tools ('TOOLS/*:KAFKA_LIB/*'), resolved on first use."""
    env = os.environ if environ is None else environ
    lib = resolve_jars(settings, env)
    paths, version = BrokerPaths.of(settings), settings.kafka_version
    pom = render_pom(version, "kafka-tools-pom.xml")
    job = _MavenJob(
        f"org.apache.kafka:kafka-tools:{version}",
        paths.tools_pom,
        pom,
        paths.tools_lib,
        paths.tools_resolved_marker,
        _digest(render_pom(version), pom),  # the broker's POM is its parent
        provided=lib,
    )
    _resolve(job, env)
    return f"{paths.tools_lib}/*:{lib}/*"


def _is_kafka_process(pid: int) -> bool:
    """True when pid is alive (not a zombie) and, where /proc tells, runs kafka.Kafka."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return True
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
        return b"kafka.Kafka" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def running_pid(settings: Settings) -> int | None:
    """The pid of the broker started from this data dir, when it is still running."""
    pid_file = BrokerPaths.of(settings).pid_file
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_kafka_process(pid) else None


def _describe_cluster(
    bootstrap: str, timeout_s: float, client: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One real Kafka API round trip: bootstrap and a Metadata request through the admin client."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def ask() -> dict[str, Any]:
        admin = AIOKafkaAdminClient(
            **{**(client or {}), "bootstrap_servers": bootstrap},
            request_timeout_ms=int(timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            return await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        finally:
            await admin.close()

    return asyncio.run(ask())


def broker_answers(
    bootstrap: str, timeout_s: float = 5.0, client: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The cluster description when a broker answers at bootstrap, else None. `client`: more
    aiokafka connection arguments (security), as `topics.kafka_client_kwargs` makes them."""
    try:
        with silenced("aiokafka"):  # refused connections while it starts are expected
            return _describe_cluster(bootstrap, timeout_s, client)
    except Exception:  # any failure means "not answering yet"
        return None


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def startup_failure(log_text: str, lines: int = 6) -> str:
    """The errors and exception causes of the last start in the broker log, as indented lines.

    Only the text after the last start marker counts; Java stack frames and INFO lines are left
    out (the last non-frame lines stand in when there are no errors).
    """
    run = [line.rstrip() for line in log_text.rsplit(_START_MARKER, 1)[-1].splitlines()]
    run = [line for line in run if line.strip() and not line.startswith(("\tat ", "\t... "))]
    errors = [line for line in run if _ERROR_LINE.search(line)]
    return "\n".join("  " + line for line in (errors or run)[-lines:])


def _prepare_data_dir(paths: BrokerPaths, fresh: bool) -> None:
    """Create the data dir (wiping it first when fresh); refuse dirs this tool did not create."""
    data = paths.data_dir
    if data.exists() and any(data.iterdir()) and not (data / _DIR_MARKER).exists():
        raise BrokerError(
            f"{data} is not empty and was not created by `stream-edits kafka`; "
            "choose another STREAM_EDITS_KAFKA_DATA_DIR"
        )
    if fresh and data.exists():
        _say(f"wiping {data}")
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    (data / _DIR_MARKER).write_text("data dir of a local broker run by `stream-edits kafka`\n")


def _java_cmd(java: str, heap: str, paths: BrokerPaths, main: list[str]) -> list[str]:
    return [
        java, *shlex.split(heap),
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths.log4j_config}",
        f"-Dkafka.logs.dir={paths.data_dir}",
        "-cp", f"{paths.lib}/*", *main,
    ]  # fmt: skip


def _format_storage(java: str, paths: BrokerPaths, scram: Sequence[str] = ()) -> None:
    """Format log.dirs for a new cluster unless it already holds one; `scram`: users to create
    (`--add-scram` arguments)."""
    if cluster_id_of(paths.kraft_dir) is not None:
        return
    cluster_id = new_cluster_id()
    _say(f"formatting {paths.kraft_dir} (cluster id {cluster_id})")
    tool = ["kafka.tools.StorageTool", "format", "-t", cluster_id]
    tool += [arg for entry in scram for arg in ("--add-scram", entry)]
    cmd = _java_cmd(java, "-Xmx256m", paths, [*tool, "-c", str(paths.server_properties)])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise BrokerError(
            f"formatting the broker's storage failed (exit {done.returncode}):\n{tail}"
        )


def _terminate(pid: int, timeout_s: float) -> bool:
    """SIGTERM, wait up to timeout_s, then SIGKILL. True when it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise BrokerError(f"not allowed to stop pid {pid} (started by another user?)") from exc
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _is_kafka_process(pid):
            return False
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _is_kafka_process(pid):
        time.sleep(0.1)
    return True


def _launch(java: str, settings: Settings, paths: BrokerPaths) -> subprocess.Popen[bytes]:
    """Start kafka.Kafka detached (own session) with output appended to the broker log."""
    main = ["kafka.Kafka", str(paths.server_properties)]
    cmd = _java_cmd(java, settings.kafka_heap, paths, main)
    with paths.log_file.open("ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"{_START_MARKER} {settings.kafka_version} at {stamp}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.data_dir,
            start_new_session=True,
        )
    paths.pid_file.write_text(f"{proc.pid}\n")
    return proc


def cluster_id_of(kraft_dir: Path) -> str | None:
    """The cluster.id that StorageTool wrote into meta.properties, if formatted."""
    try:
        text = (kraft_dir / "meta.properties").read_text()
    except OSError:
        return None
    match = re.search(r"^cluster\.id=(\S+)$", text, re.MULTILINE)
    return match.group(1) if match else None


def _wait_ready(
    proc: subprocess.Popen[bytes],
    settings: Settings,
    paths: BrokerPaths,
    client: Mapping[str, Any] | None = None,
) -> None:
    """Block until our broker answers a Metadata request; stop it and raise on failure."""
    bootstrap = f"{HOST}:{settings.kafka_port}"
    ours = cluster_id_of(paths.kraft_dir)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            paths.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                f"the broker exited with code {code} while starting (log: {paths.log_file}):\n"
                + startup_failure(_read_log(paths.log_file))
            )
        cluster = broker_answers(bootstrap, timeout_s=3.0, client=client)
        # Another broker that bound the port first may answer; only our cluster id counts.
        if cluster is not None and cluster.get("cluster_id") == ours:
            return
        time.sleep(0.5)
    _terminate(proc.pid, 10.0)
    paths.pid_file.unlink(missing_ok=True)
    raise BrokerError(
        f"the broker did not answer on {bootstrap} within {READY_TIMEOUT_S:.0f} s and was stopped "
        f"(log: {paths.log_file}):\n" + startup_failure(_read_log(paths.log_file))
    )


def _start(
    settings: Settings,
    fresh: bool,
    environ: Mapping[str, str],
    security_mode: Mode | None = None,
) -> int:
    from stream_edits_dev.broker import security, tls

    paths = BrokerPaths.of(settings)
    java = find_java(environ)
    java_version(java)
    pid = running_pid(settings)
    if pid is not None and not fresh:
        _checked(security.choose_mode, paths, security_mode)
        print(f"already running on {HOST}:{settings.kafka_port} (pid {pid}); log: {paths.log_file}")
        return 0
    if pid is not None:
        _say(f"stopping the running broker (pid {pid}) before wiping its data")
        _stop_pid(settings, pid)
    paths.pid_file.unlink(missing_ok=True)
    _prepare_data_dir(paths, fresh)
    mode = _checked(security.choose_mode, paths, security_mode)
    check_ports_free(settings)
    resolve_jars(settings, environ)
    began = time.monotonic()
    secured = _checked(security.prepare, settings, paths) if mode == "sasl_ssl" else None
    if secured is None:
        paths.server_properties.write_text(render_server_properties(settings, paths.kraft_dir))
    else:  # it holds the broker's own password
        text = render_server_properties(settings, paths.kraft_dir, secured.properties)
        tls.write_private(paths.server_properties, text.encode())
    config = resources.files(__package__).joinpath("log4j2.xml").read_text("utf-8")
    paths.log4j_config.write_text(config)
    with _locked(paths.data_dir / ".lock"):
        _format_storage(java, paths, secured.scram_arguments if secured else ())
    proc = _launch(java, settings, paths)
    _say(f"started pid {proc.pid}; waiting for it to answer on {HOST}:{settings.kafka_port}")
    client = None
    if secured is not None:
        from stream_edits.kafka.topics import kafka_client_kwargs

        client = kafka_client_kwargs(secured.admin)
    _wait_ready(proc, settings, paths, client)
    _say(f"ready in {time.monotonic() - began:.1f} s")
    print(
        f"Kafka {settings.kafka_version} running on {HOST}:{settings.kafka_port} "
        f"(pid {proc.pid}); log: {paths.log_file}"
    )
    if secured is not None:
        files = secured.files
        print(
            f"SASL_SSL ({security.MECHANISM}), ACLs enforced; CA: {files.ca}; admin settings "
            f"(secret): {files.env_file(security.ADMIN_USER)}"
        )
    return 0


def _checked(step: Callable[..., Any], *args: Any) -> Any:
    """Run a security step, reporting its SecurityError as a BrokerError."""
    from stream_edits_dev.broker.security import SecurityError

    try:
        return step(*args)
    except SecurityError as exc:
        raise BrokerError(str(exc)) from exc


def _stop_pid(settings: Settings, pid: int) -> None:
    if _terminate(pid, STOP_TIMEOUT_S):
        _say(f"pid {pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s and was killed")
    BrokerPaths.of(settings).pid_file.unlink(missing_ok=True)


def _stop(settings: Settings) -> int:
    pid = running_pid(settings)
    if pid is None:
        BrokerPaths.of(settings).pid_file.unlink(missing_ok=True)
        print("already stopped")
        return 0
    _say(f"stopping pid {pid}")
    _stop_pid(settings, pid)
    print(f"stopped (was pid {pid})")
    return 0


def _report(action: Callable[..., int], *args: Any) -> int:
    """Run a CLI action, turning BrokerError into `error: ...` on stderr and exit code 1."""
    try:
        return action(*args)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


# --- the CLI's entry points ----------------------------------------------------------------


def start(
    settings: Settings,
    fresh: bool = False,
    environ: Mapping[str, str] | None = None,
    security: Mode | None = None,
) -> int:
    """Start the broker unless it runs (fresh: stop it, wipe its data, re-format, start).
    `security`: "plaintext" or "sasl_ssl" (TLS, SCRAM, ACLs); None keeps the data dir's mode."""
    env = os.environ if environ is None else environ
    return _report(_start, settings, fresh, env, security)


def stop(settings: Settings) -> int:
    """Stop the broker (SIGTERM, SIGKILL after STOP_TIMEOUT_S); 0 also when it was not running."""
    return _report(_stop, settings)


def status(settings: Settings) -> int:
    """Print whether the broker runs; exit 0 when it does, STATUS_STOPPED (3) when not."""
    pid = running_pid(settings)
    if pid is None:
        print("stopped")
        return STATUS_STOPPED
    print(f"running on {HOST}:{settings.kafka_port} (pid {pid})")
    return 0
