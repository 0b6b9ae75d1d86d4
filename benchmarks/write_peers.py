"""The processors a write-side round runs, each as its own process on the round's topics.

- ``cqrs worker``, the product, exactly-once or at-least-once (its CLI, settings and
  readiness marker are the whole interface used);
- the plain confluent-kafka transactional loop (``benchmarks.peers.plain_loop``);
- quix-streams, exactly-once with RocksDB state (``benchmarks.peers.quix_app``), in a
  virtualenv of its own under ``benchmarks/.venv-quix``, made on first use from
  ``benchmarks/peers/quix-requirements.txt`` (quix-streams pins an older
  confluent-kafka than the product);
- Kafka Streams, exactly_once_v2 with a persistent (RocksDB) store
  (``benchmarks/kstreams``), built on first use.

All commit every ``processor.commit_interval_s`` (0.05 s by default).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from benchmarks import kstreams
from benchmarks.write_workload import Child, Processor, Round
from cqrs.children import WORKER_READY, cqrs_process

REPOSITORY = Path(__file__).resolve().parent.parent
QUIX_VENV = Path(__file__).parent / ".venv-quix"
QUIX_REQUIREMENTS = Path(__file__).parent / "peers" / "quix-requirements.txt"


@contextmanager
def worker(space: Round, guarantee: str, store: str | None = None) -> Iterator[Child]:
    env = {
        "CQRS_KAFKA__TOPIC_PREFIX": space.prefix,
        "CQRS_PROCESSOR__APP_ID": space.run,
        "CQRS_PROCESSOR__DATADIR": str(space.state),
        "CQRS_PROCESSOR__PROCESSING_GUARANTEE": guarantee,
        "CQRS_OBSERVABILITY__PORT": "0",
        **({"CQRS_PROCESSOR__STORE": store} if store else {}),
    }
    log = space.state / "worker.log"
    with cqrs_process(["worker"], log, [WORKER_READY], env) as process:
        yield Child(process, log)


@contextmanager
def child(
    command: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> Iterator[Child]:
    """``command`` writing to ``log``; SIGTERM (then SIGKILL after 30 s) on the way out."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            cwd=REPOSITORY,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Child(process, log)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _peer_arguments(space: Round, name: str) -> list[str]:
    settings = space.settings
    state = space.state / name
    state.mkdir()
    return [
        f"--bootstrap={settings.kafka.bootstrap_servers}",
        f"--registry={settings.registry.url}",
        f"--prefix={space.prefix}",
        f"--group={space.run}-{name}",
        f"--state-dir={state}",
        f"--commit-interval={settings.processor.commit_interval_s}",
    ]


def plain_loop(space: Round) -> Iterator[Child]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.peers.plain_loop",
        *_peer_arguments(space, "plain"),
    ]
    with child(command, space.state / "plain.log") as running:
        yield running


def quix_python() -> Path:
    """The quix virtualenv's interpreter, made (or remade) when the requirements changed."""
    python = QUIX_VENV / "bin" / "python"
    marker = QUIX_VENV / ".installed"
    wanted = QUIX_REQUIREMENTS.read_text()
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing the quix-streams peer into {QUIX_VENV}...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(QUIX_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(QUIX_REQUIREMENTS)], check=True)
    marker.write_text(wanted)
    return python


def quix_version() -> str:
    found = subprocess.run(
        [str(quix_python()), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()


def quix(space: Round) -> Iterator[Child]:
    command = [str(quix_python()), "-m", "benchmarks.peers.quix_app"]
    command += _peer_arguments(space, "quix")
    with child(command, space.state / "quix.log", {"PYTHONPATH": str(REPOSITORY)}) as running:
        yield running


def kafka_streams(space: Round) -> Iterator[Child]:
    settings = space.settings
    state = space.state / "kstreams"
    peer = kstreams.build(settings)
    command = peer.command(
        bootstrap=settings.kafka.bootstrap_servers,
        registry=settings.registry.url,
        prefix=space.prefix,
        app_id=f"{space.run}-kstreams",
        state=state,
        commit_ms=round(settings.processor.commit_interval_s * 1000),
    )
    with child(command, space.state / "kstreams.log") as running:
        yield running


WORKER_EXACTLY_ONCE = "worker exactly-once"
WORKER_AT_LEAST_ONCE = "worker at-least-once"
WORKER_ON_DISK = "worker exactly-once sqlite"
PEERS = {"quix-streams": "quix", "plain loop": "plain", "kafka streams": "kstreams"}


def processors(peers: Sequence[str], on_disk: bool = False) -> dict[str, Processor]:
    """The round's processors in the order they run: worker exactly-once, with state on
    disk when asked (``sqlite://``), the peers chosen (quix, plain, kstreams), worker
    at-least-once."""
    chosen: dict[str, Processor] = {
        WORKER_EXACTLY_ONCE: partial(worker, guarantee="exactly_once", store="memory://"),
    }
    if on_disk:
        chosen[WORKER_ON_DISK] = partial(worker, guarantee="exactly_once", store="sqlite://")
    runners = {"quix": quix, "plain": plain_loop, "kstreams": kafka_streams}
    for name, short in PEERS.items():
        if short in peers:
            chosen[name] = contextmanager(runners[short])
    chosen[WORKER_AT_LEAST_ONCE] = partial(worker, guarantee="at_least_once")
    return chosen
