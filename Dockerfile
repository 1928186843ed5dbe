# syntax=docker/dockerfile:1
# The exporter's image: a virtual environment built in one stage from the hash-pinned lock,
# copied into a slim Python in the next. The final image has no compiler, no build tooling and
# no source tree; it runs as a numeric non-root user, so Kubernetes can check runAsNonRoot.
#
#   docker build -t cqrs-cassandra-exporter:0.1.0 .
#   docker run --rm -v "$PWD/config.yaml:/etc/cqrs-exporter/config.yaml:ro" -p 9469:9469 \
#       cqrs-cassandra-exporter:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# A compiler, for any dependency without a wheel for this platform (e.g. the driver's or
# hdrhistogram's C extensions on a less common architecture). It stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, from requirements.lock (`make lock`): every version pinned and every
# file checked against its hash, so two builds of one commit install the same packages. This
# layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN python -m venv /opt/cqrs-exporter \
    && /opt/cqrs-exporter/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
# Then the project itself, without resolving anything again; `pip check` fails the build if
# pyproject.toml asks for a dependency the lock does not hold.
# Only what the package is built from (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
COPY probes/ probes/
RUN /opt/cqrs-exporter/bin/pip install --no-cache-dir --no-deps . \
    && /opt/cqrs-exporter/bin/pip check

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/cqrs-exporter/bin:$PATH
# The environment alone: the same base image, so its interpreter links resolve.
COPY --from=build /opt/cqrs-exporter /opt/cqrs-exporter
RUN groupadd --gid 10001 cqrs-exporter \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cqrs-exporter \
    && mkdir -p /etc/cqrs-exporter
# Numeric, so the kubelet can verify runAsNonRoot; the chart's securityContext uses the same.
USER 10001:10001
EXPOSE 9469
ENTRYPOINT ["cqrs-exporter"]
CMD ["serve", "--config", "/etc/cqrs-exporter/config.yaml"]

LABEL org.opencontainers.image.title="cqrs-cassandra-exporter" \
      org.opencontainers.image.description="Prometheus exporter and health endpoints for CQRS systems on multi-datacenter Apache Cassandra" \
      org.opencontainers.image.licenses="Apache-2.0"
