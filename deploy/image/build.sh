#!/usr/bin/env bash
# The install steps of the container image (deploy/Dockerfile), kept in one script
# so that they can be run, and tested, outside a container engine too.
#
#   build.sh wheels <source dir> <wheel dir>   builder stage: wheels of the project
#                                              and every dependency, as locked in
#                                              deploy/image/requirements.lock
#   build.sh install <wheel dir> <venv dir>    runtime stage: a virtualenv from those
#                                              wheels only (no network), then a smoke run
set -euo pipefail

step="${1:?usage: build.sh wheels <src> <wheels> | install <wheels> <venv>}"
python="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

case "$step" in
    wheels)
        src="${2:?source directory}" wheels="${3:?wheel directory}"
        mkdir -p "$wheels"
        # The dependencies exactly as locked (versions and hashes: the same image from
        # the same commit), binary wheels where PyPI has them, so the runtime stage
        # needs no compiler; then the project itself, without resolving anything.
        "$python" -m pip wheel --quiet --require-hashes --wheel-dir "$wheels" \
            -r "$src/deploy/image/requirements.lock"
        "$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$src"
        echo "built $(ls "$wheels" | wc -l) wheels into $wheels"
        ;;
    install)
        wheels="${2:?wheel directory}" venv="${3:?virtualenv directory}"
        "$python" -m venv "$venv"
        # Offline: exactly the wheels of the builder stage. Byte code is compiled
        # now, so the read-only root filesystem never needs a write at run time.
        "$venv/bin/pip" install --quiet --no-index --find-links "$wheels" --compile \
            "cqrs-pipeline[tracing]"
        "$venv/bin/pip" uninstall --quiet --yes pip setuptools wheel >/dev/null 2>&1 || true
        "$venv/bin/cqrs" --help >/dev/null
        "$venv/bin/python" -c "import confluent_kafka, fastavro, orjson, psycopg, opentelemetry.sdk"
        echo "installed cqrs-pipeline into $venv"
        ;;
    *)
        echo "error: unknown step $step (wheels | install)" >&2
        exit 2
        ;;
esac
