# syntax=docker/dockerfile:1
#
# Stream Cart image: one Python process serving HTTP (REST, Socket.IO, WHEP) on 8080
# and RTMP ingest on 1935. Build:   docker build -t streamcart .
# Run alone (embedded SQLite/memory backends, data in the volume):
#   docker run -p 8080:8080 -p 1935:1935 -v streamcart-data:/data streamcart
# The full stack (PostgreSQL, Redis, RabbitMQ, MongoDB, nginx, two replicas) is
# docker-compose.yml; see docs/deployment.md.
#
# Both stages must use the same base image: the virtualenv copied from the build
# stage points at /usr/local/bin/python3.11 of that image.
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# build: resolve and install everything into /opt/venv
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall them.
# PyAV, aiortc (pylibsrtp, cryptography, google-crc32c), asyncpg and argon2 all ship
# manylinux wheels that bundle their native libraries: no compiler, no apt packages.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself (what .dockerignore lets through), with its one C module (the
# WebRTC fan-out's send path), built here so the runtime stage needs no compiler.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN pip install --no-deps . \
    && python -c "import signaling.rtp._sendpath" \
    && streamcart --help > /dev/null

# ---------------------------------------------------------------------------
# runtime: the virtualenv, a non-root user and a data volume; nothing else
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="Stream Cart" \
      org.opencontainers.image.description="Realtime live-commerce server: RTMP in, WebRTC out, chat, flash sales, carts and Sepay payments" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 streamcart \
    && useradd --system --uid 10001 --gid streamcart --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin streamcart \
    && mkdir -p /data \
    && chown streamcart:streamcart /data

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMCART_DATA_DIR=/data \
    STREAMCART_HTTP_PORT=8080 \
    STREAMCART_RTMP_PORT=1935 \
    STREAMCART_LOG_FORMAT=json

# Recordings, thumbnails and (when STREAMCART_DATABASE_URL / STREAMCART_JWT_SECRET are
# not set) the SQLite file and the generated JWT secret. A fresh named volume inherits
# the streamcart ownership of /data.
VOLUME ["/data"]
WORKDIR /data

# Numeric so that "runAsNonRoot" checks (Kubernetes and others) can verify it.
USER 10001:10001

# 8080/tcp: HTTP (REST, Socket.IO, WHEP, Swagger UI, /healthz, /metrics)
# 1935/tcp: RTMP ingest (OBS publishes here with the session's stream key)
# WebRTC media uses ephemeral UDP ports chosen by aiortc; see docs/deployment.md.
EXPOSE 8080 1935

# No curl in the slim image: probe with the standard library. urlopen raises (exit 1)
# on a connection error, a timeout or any non-2xx status.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STREAMCART_HTTP_PORT', '8080'), timeout=4)"]

CMD ["streamcart", "serve"]
