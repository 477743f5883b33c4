# One image for every cortex service: the bus (`cortex nats`), scheduler, gateway, neuron.
# CPU build by default. compose.gpu.yaml builds it for NVIDIA GPUs with
#   BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04 RUNTIME_BASE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
#   CMAKE_ARGS=-DGGML_CUDA=on
# Any Debian or Ubuntu base works; one without Python gets it from its packages. The image
# runs on RUNTIME_BASE (default: BASE): the same distribution, without the compilers.
ARG BASE=python:3.11-slim-bookworm
ARG RUNTIME_BASE=${BASE}

FROM ${BASE} AS build
ARG CMAKE_ARGS=""
ARG LLAMA_CPP_PYTHON=0.3.36
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ca-certificates \
    $(command -v python3 >/dev/null || echo python3 python3-venv python3-dev) \
 && rm -rf /var/lib/apt/lists/*
# Build-time inputs only (deploy/docker/build-inputs/README.md): wheels already built and a
# CA bundle for pip. This stage is not the image: nothing of them reaches it.
COPY deploy/docker/build-inputs/ /inputs/
RUN python3 -m venv /opt/cortex \
 && echo "llama-cpp-python==${LLAMA_CPP_PYTHON}" > /inputs/constraints.txt
ENV PIP_FIND_LINKS=/inputs/wheels PIP_CONSTRAINT=/inputs/constraints.txt
# llama.cpp in a layer of its own: it changes only with its version and build flags.
RUN if [ -f /inputs/ca.crt ]; then export PIP_CERT=/inputs/ca.crt; fi \
 && CMAKE_ARGS="${CMAKE_ARGS}" /opt/cortex/bin/pip install "llama-cpp-python==${LLAMA_CPP_PYTHON}"
COPY pyproject.toml README.md /src/
COPY libs /src/libs
COPY services /src/services
COPY cli /src/cli
RUN if [ -f /inputs/ca.crt ]; then export PIP_CERT=/inputs/ca.crt; fi \
 && /opt/cortex/bin/pip install /src \
 && mkdir -p /etc/cortex \
 && /opt/cortex/bin/python -c "from pathlib import Path; \
from cortex_cli.demo import write_demo_catalogue; write_demo_catalogue(Path('/etc/cortex'))"

FROM ${RUNTIME_BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
    $(command -v python3 >/dev/null || echo python3 python3-venv) \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/cortex --shell /usr/sbin/nologin cortex
COPY --from=build /opt/cortex /opt/cortex
COPY --from=build /etc/cortex /etc/cortex
ENV PATH=/opt/cortex/bin:$PATH PYTHONUNBUFFERED=1 CORTEX_LOG_FORMAT=json \
    CORTEX_STATE_DIR=/var/lib/cortex
USER cortex
WORKDIR /var/lib/cortex
ENTRYPOINT ["cortex"]
