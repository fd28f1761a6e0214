# CheXNet inference service: `chexnet serve` with the bundled demo model (models/bundled/chexnet-demo.pt,
# package data), so the image needs no external weights. Research use only.
#
#   docker build -t chexnet .
#   docker run --rm --gpus all -p 127.0.0.1:8000:8000 chexnet          # or: docker compose up -d
#   docker run --rm -e CHEXNET_DEVICE=cpu -p 127.0.0.1:8000:8000 chexnet
#
# No `# syntax=` line: it would make BuildKit pull its frontend from a registry; the built-in one suffices, and the
# legacy builder (DOCKER_BUILDKIT=0) builds this file as well. Where Docker Hub cannot be reached, build the base
# from Debian's packages: --build-arg PYTHON_IMAGE="$(deploy/stand-in-base.sh)" (docs/deploy.md).
#
# Why python:3.11-slim plus the PyPI torch wheels rather than a pytorch/ or nvidia/cuda base image:
#  * the PyPI wheels for torch==2.14.1 / torchvision==0.29.1 on linux/x86_64 are CUDA builds (CUDA 13.0) that
#    carry their own CUDA runtime, cuDNN, cuBLAS, NCCL as nvidia-* wheels; the only thing needed from the host is
#    the NVIDIA driver, which the NVIDIA Container Toolkit mounts in at `docker run --gpus` / compose
#    `deploy.resources.reservations.devices` time (CUDA 13 needs driver >= 580 on the host);
#  * they are exactly the builds pinned in the Makefile (TORCH_PINS) that the test suite runs against;
#  * the same image runs on a CPU-only host (CHEXNET_DEVICE=cpu or auto);
#  * a CUDA base image would add a second, unused copy of the CUDA libraries and a different Python.
# For a much smaller CPU-only image: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# For fully reproducible builds, pin the base image by digest as well (python:3.11.14-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------------------------
# Build stage: a virtual environment in /opt/venv with torch and the project (base dependencies only).
# ---------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG TORCH_INDEX_URL=https://pypi.org/simple

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, in its own layer: it is by far the largest and changes least often.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1

# Only what the wheel is built from: no tests, no virtualenv, no runs/ or data (see also .dockerignore).
WORKDIR /src
COPY pyproject.toml README.md chexnet_cli.py ./
COPY models/ models/
COPY training/ training/
COPY app/ app/

# The project itself, without extras: serving needs none of [train] (pandas, scikit-learn, matplotlib) or
# [dev]. It is installed from the local source tree (hadolint's DL3013 pin rule does not apply to a path).
# Then, isolated from the source tree (-I), check that the bundled model and the upload page (app/static) made it
# into the installed package and that the console script starts without the extras.
RUN pip install --no-cache-dir . \
    && python -I -c "import importlib.resources as r; assert r.files('models').joinpath('bundled/chexnet-demo.pt').is_file(), 'bundled demo model missing'" \
    && python -I -c "import importlib.resources as r; assert r.files('app').joinpath('static/index.html').is_file(), 'upload page missing'" \
    && chexnet --help > /dev/null

# ---------------------------------------------------------------------------------------------------------------
# Runtime stage: the virtual environment, a non-root user, nothing else (no compilers, no curl, no source tree).
# ---------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="chexnet" \
      org.opencontainers.image.description="CheXNet chest X-ray inference service (research use only)" \
      org.opencontainers.image.licenses="Apache-2.0"

# Caches go to /tmp: the compose file runs the container with a read-only root filesystem and a tmpfs on /tmp.
# NVIDIA_DRIVER_CAPABILITIES asks the NVIDIA Container Toolkit for the CUDA (compute) driver libraries; it is
# inert on hosts without GPUs. NVIDIA_VISIBLE_DEVICES is deliberately not set: GPUs are requested at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/.cache/torch \
    CUDA_CACHE_PATH=/tmp/.cache/nv \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    CHEXNET_HOST=0.0.0.0 \
    CHEXNET_PORT=8000

RUN groupadd --system --gid 10001 chexnet \
    && useradd --system --no-log-init --uid 10001 --gid chexnet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin chexnet

# Owned by root and not writable by the service user: the code cannot be modified at run time.
COPY --from=build /opt/venv /opt/venv

WORKDIR /srv
# Numeric, so runtimes (Kubernetes runAsNonRoot, host file ownership) can tell it is not root.
USER 10001:10001

EXPOSE 8000

# The service drains in-flight requests on SIGTERM for up to CHEXNET_DRAIN_SECONDS (default 20 s); give
# `docker stop` a longer timeout than that (`docker stop -t 30`; compose: stop_grace_period: 30s).
STOPSIGNAL SIGTERM

# The health check asks /readyz (200 once the model is loaded and warmed up, 503 while loading or draining) on the
# address the service listens on, read from the same settings (CHEXNET_HOST, CHEXNET_PORT): `-e CHEXNET_PORT=9000`
# moves both. It imports only the standard library (no torch). start-period covers importing torch, CUDA
# initialisation and loading the model.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "app.runtime.probe"]

# Exec form, so the service is PID 1 and receives SIGTERM itself. Host and port come from CHEXNET_HOST and
# CHEXNET_PORT (above) and nowhere else. 0.0.0.0 is needed inside the container's own network namespace; what the
# host exposes is decided by the port mapping (127.0.0.1 in compose). With --network host, set CHEXNET_HOST.
CMD ["chexnet", "serve"]
