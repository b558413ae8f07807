# syntax=docker/dockerfile:1
# marketpipe image: every service (`marketpipe produce <venue>`, `marketpipe process`,
# `marketpipe schemas register`) runs from it; the Helm chart picks the subcommand.
#   docker build -t marketpipe:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/marketpipe
ENV PATH=/opt/marketpipe/bin:$PATH
WORKDIR /src
# Only what the package needs (see .dockerignore): no tests, simulators, benchmarks or chart.
COPY pyproject.toml README.md ./
COPY marketpipe ./marketpipe
COPY schemas ./schemas
COPY producers ./producers
COPY processors ./processors
# rocksdict: the processors' RocksDB table store (values.yaml: rocksdb://).
RUN pip install --upgrade pip setuptools wheel \
 && pip install "."

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="marketpipe" \
      org.opencontainers.image.description="Crypto venue feeds -> governed Kafka data product" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/marketpipe/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# An unprivileged user with a fixed uid/gid (the chart's securityContext runs as 10001:10001) owning
# only the processors' data directory; the installed code stays root-owned and read-only.
RUN groupadd --system --gid 10001 marketpipe \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/marketpipe --shell /usr/sbin/nologin marketpipe \
 && mkdir -p /var/lib/marketpipe/processors \
 && chown -R 10001:10001 /var/lib/marketpipe
COPY --from=build /opt/marketpipe /opt/marketpipe
WORKDIR /var/lib/marketpipe
USER 10001:10001
EXPOSE 6066 8080
ENTRYPOINT ["marketpipe"]
CMD ["--help"]
