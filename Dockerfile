# syntax=docker/dockerfile:1
# The exporter's image: a wheel built in one stage, installed into a slim Python in the next.
# The final image has no compiler, no build tooling and no source tree; it runs as a
# numeric non-root user, so Kubernetes can check runAsNonRoot.
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
WORKDIR /src
# Only what the package is built from (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
COPY probes/ probes/
# The project's wheel and a wheel for every dependency, so the next stage installs offline.
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are mounted for this one step, not copied, so they add no layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links /wheels cqrs-cassandra-exporter \
    && groupadd --gid 10001 cqrs-exporter \
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
