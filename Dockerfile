# roomevents: one image for every role.
#   docker run IMAGE                 -> `roomevents ingress` (HTTP, port 8080)
#   docker run IMAGE materializer    -> Kafka consumer (health/metrics on 9090)
#   docker run IMAGE archive         -> state topic -> PostgreSQL history (health/metrics on 9090)
#   docker run IMAGE migrate         -> apply the history store's schema migrations and exit
#   docker run IMAGE topics          -> create the Kafka topics and exit
#
# Build from the repository root:  docker build -t roomevents:dev .
# The base image is pinned by tag; pin it by digest as well in your registry
# mirror (python:3.11-slim-bookworm@sha256:...) for fully reproducible builds.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------
# builder: build the wheel and a self-contained venv in /opt/venv
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The same script .ci/deploy-checks runs in a fresh venv, so these install steps
# are tested without a Docker engine. It builds the wheel, installs it with its
# runtime dependencies only (no test extras) and byte-compiles everything.
COPY deploy/build-venv.sh /tmp/build-venv.sh
COPY pyproject.toml README.md ./
COPY service ./service

RUN sh /tmp/build-venv.sh /src /opt/venv /tmp/wheels

# ---------------------------------------------------------------------------
# runtime: only the venv on a clean slim base, non-root
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="roomevents" \
      org.opencontainers.image.description="Durable, ordered Twilio Video room events on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ROOMEVENTS_HOST=0.0.0.0 \
    ROOMEVENTS_PORT=8080 \
    ROOMEVENTS_METRICS_PORT=9090 \
    ROOMEVENTS_LOG_FORMAT=json

# Fixed numeric ids so Kubernetes' runAsNonRoot can verify them.
RUN groupadd --system --gid 10001 roomevents \
    && useradd --system --uid 10001 --gid roomevents \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin roomevents

COPY --from=builder /opt/venv /opt/venv
COPY deploy/healthcheck.py /usr/local/bin/roomevents-healthcheck

WORKDIR /tmp
USER 10001:10001

# 8080: ingress HTTP (API, callbacks, /healthz, /readyz, /metrics)
# 9090: materializer /healthz, /readyz, /metrics
EXPOSE 8080 9090

# No curl in slim: a stdlib probe that asks /healthz on the HTTP port
# (ingress) or, if nothing listens there, the metrics port (materializer).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/roomevents-healthcheck"]

ENTRYPOINT ["roomevents"]
CMD ["ingress"]
