#!/bin/sh
# Builds the production virtualenv for roomevents from a source tree.
#
# The Dockerfile's builder stage runs exactly this script, and so does
# .ci/deploy-checks (in a fresh temporary venv), so the image's install steps
# are exercised on every check run without a Docker engine.
#
# usage: build-venv.sh SRC_DIR VENV_DIR WHEEL_DIR
#   SRC_DIR    a copy of the build context (pyproject.toml, README.md, service/)
#   VENV_DIR   where to create the virtualenv (the image uses /opt/venv)
#   WHEEL_DIR  scratch directory for the built wheel
#
# PYTHON (default python3) is the interpreter the venv is made from.
#
# Only the runtime dependencies from pyproject.toml are installed: no test or
# embedded-broker extras, no build tools in the resulting venv beyond pip.
set -eu

src=$(cd "$1" && pwd)  # absolute: pip reads a bare relative name as a requirement
venv=$2
wheels=$3

"${PYTHON:-python3}" -m venv "$venv"
# Build the project wheel (PEP 517, isolated build env with setuptools+wheel).
"$venv/bin/pip" wheel --no-deps --wheel-dir "$wheels" "$src"
# Install the wheel and its runtime dependencies only (no extras).
"$venv/bin/pip" install "$wheels"/roomevents-*.whl
# The build backend is not needed at run time.
"$venv/bin/pip" uninstall --yes setuptools >/dev/null 2>&1 || true
# Fail the build if the resolved dependency set is inconsistent.
"$venv/bin/pip" check
