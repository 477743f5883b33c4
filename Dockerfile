# One image for every cortex service. CPU build by default; for NVIDIA GPUs build with
#   docker build --build-arg BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04 \
#                --build-arg CMAKE_ARGS="-DGGML_CUDA=on" -t cortex:cuda .
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG CMAKE_ARGS=""
ENV CMAKE_ARGS=${CMAKE_ARGS} PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 CORTEX_LOG_FORMAT=json
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake git curl \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/cortex
ENV PATH=/opt/cortex/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY cli ./cli
RUN pip install .
WORKDIR /
ENTRYPOINT ["cortex"]
