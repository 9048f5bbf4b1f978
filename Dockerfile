# The daemon's image: one image for every role (`cdc ingest`, `cdc poll`, `cdc sync`, `cdc sandbox`, and the
# one-shot `cdc topics ensure`); the command picks the role. Build: `docker build -t crm-cdc .`
#
# Two stages: the first installs the package into a virtualenv (`pip install .`), the second copies only that
# virtualenv onto a clean slim base, so no build cache or source tree ships.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/cdc
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY consumers ./consumers
COPY cdc ./cdc
RUN /opt/cdc/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/cdc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTH_PORT=8080
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 cdc \
    && useradd --system --uid 10001 --gid cdc --home-dir /home/cdc --create-home --shell /usr/sbin/nologin cdc
COPY --from=build /opt/cdc /opt/cdc
USER 10001:10001
WORKDIR /home/cdc
# 8080 `cdc ingest` (webhooks + probes), 8081 `cdc poll`, 8082 `cdc sync` (probes and /metrics).
EXPOSE 8080 8081 8082
# Liveness only: /healthz answers 200 while the event loop runs (503 once the role is shutting down). Which port depends on the role, so it is read
# from HEALTH_PORT (not a CDC_ variable: the settings loader rejects CDC_ names it does not know).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTH_PORT', '8080'), timeout=4)" || exit 1
ENTRYPOINT ["cdc"]
CMD ["--help"]
