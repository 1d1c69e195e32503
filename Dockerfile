# The oilwater artifact image (docs/container.md).
#
#   docker build -t oilwater --build-arg OILWATER_GIT_COMMIT="$(git rev-parse HEAD)" .
#   docker run --rm --gpus all -v "$DATA":/data:ro -v "$RESULTS":/results oilwater ./reproduce.sh table2
#
# Needs BuildKit (the default builder since Docker Engine 23) for RUN --mount.

# --- CUDA base ----------------------------------------------------------------------------------
# requirements.lock pins torch 2.14.1 / torchvision 0.29.1 built for CUDA 13.0 (nvidia-cuda-runtime
# ==13.0.96, cuDNN/cuBLAS/NCCL ...-cu13). Those pip wheels bring their own CUDA user-space libraries,
# and torch loads them, not the base image's. The base image mainly supplies the driver-compatible
# runtime layout: the NVIDIA_* variables through which the NVIDIA Container Toolkit mounts the host
# driver into the container, and NVIDIA_REQUIRE_CUDA=cuda>=13.0, which makes `docker run --gpus`
# refuse a host driver too old for CUDA 13.0 with a clear message instead of failing inside torch.
# So its CUDA major.minor must be the wheels' 13.0 (tests/test_container.py checks this against the
# lock); the update (13.0.2) does not matter to the wheels. CUDA_FLAVOR=base gives a smaller image
# (cudart only), which works because the wheels carry the rest; runtime is the documented default.
# Ubuntu 24.04: supported by CUDA 13.0 and by torch's manylinux_2_28 wheels (glibc 2.39).
ARG CUDA_VERSION=13.0.2
ARG CUDA_FLAVOR=runtime
ARG UBUNTU_VERSION=24.04
ARG BASE_IMAGE=nvidia/cuda:${CUDA_VERSION}-${CUDA_FLAVOR}-ubuntu${UBUNTU_VERSION}

# --- Python ---------------------------------------------------------------------------------------
# The lock is for CPython 3.11 (cp311 wheels), but Ubuntu 24.04 ships 3.12 and python:3.11-slim has
# no CUDA layout. A uv-managed CPython (python-build-standalone, from uv's mirror of its releases)
# gives an exact patch release on any base, checked against the sha256 list that the pinned uv
# version embeds. The alternative, the deadsnakes PPA, keeps only its newest build of each package, so
# an apt pin of it stops building, and an unpinned one changes under you. uv only fetches the
# interpreter and is not left in the image; the venv is made by python -m venv (its bundled pip and
# setuptools are fixed by the patch release), and packages go in through scripts/install.sh.
ARG UV_VERSION=0.13.9
ARG PYTHON_VERSION=3.11.18

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM ${BASE_IMAGE}
ARG PYTHON_VERSION
ARG OILWATER_GIT_COMMIT=""

LABEL org.opencontainers.image.title="oilwater" \
      org.opencontainers.image.description="Artifact for 'Like Oil and Water: Group Robustness and Poisoning Defenses Don't Mix'" \
      org.opencontainers.image.revision="${OILWATER_GIT_COMMIT}"

ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN --mount=from=uv,source=/uv,target=/usr/local/bin/uv \
    uv --no-cache python install --no-bin "${PYTHON_VERSION}" \
 && "$(uv python find --managed-python "${PYTHON_VERSION}")" -m venv /opt/venv \
 && /opt/venv/bin/python --version

# The image's python is the venv's: scripts/install.sh without VENV_DIR installs into it.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /opt/oilwater

# Dependencies first, from the lock only, so that editing the sources does not redo this layer.
COPY requirements.lock ./requirements.lock
COPY scripts/install.sh ./scripts/install.sh
RUN bash scripts/install.sh --deps-only

# ImageNet weights for the pretrained ResNets, in the torch hub cache that artifact/models.py reads:
# torchvision's IMAGENET1K_V1 files (not DEFAULT, which is V2 for resnet50). download_url_to_file
# checks that the file's sha256 starts with the hash part of its name.
ENV TORCH_HOME=/opt/torch
RUN python -c "import torchvision.models as m; \
assert m.ResNet18_Weights.IMAGENET1K_V1.url.endswith('/resnet18-f37072fd.pth'); \
assert m.ResNet50_Weights.IMAGENET1K_V1.url.endswith('/resnet50-0676ba61.pth')" \
 && mkdir -p "$TORCH_HOME/hub/checkpoints" \
 && for f in resnet18-f37072fd.pth resnet50-0676ba61.pth; do \
      h="${f#*-}"; h="${h%.pth}"; \
      python -c "import sys, torch.hub; torch.hub.download_url_to_file(sys.argv[1], sys.argv[2], hash_prefix=sys.argv[3], progress=False)" \
        "https://download.pytorch.org/models/$f" "$TORCH_HOME/hub/checkpoints/$f" "$h" || exit 1; \
    done \
 && chmod -R a+rX "$TORCH_HOME"

# Mount points (documented, not VOLUMEs: a forgotten -v should fail loudly rather than write the
# results into an anonymous volume). The decoded-image cache goes under /results so that it
# survives the container; HOME-like paths are in /tmp so that any --user uid works.
RUN groupadd --gid 10001 oilwater \
 && useradd --create-home --no-log-init --uid 10001 --gid 10001 oilwater \
 && mkdir -p /data /results \
 && chown 10001:10001 /results
ENV OILWATER_IN_IMAGE=1 \
    OILWATER_DATA_ROOT=/data \
    OILWATER_RESULTS=/results \
    OILWATER_CACHE=/results/.cache/oilwater \
    OILWATER_GIT_COMMIT=${OILWATER_GIT_COMMIT} \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache

# The sources, owned by root and read-only for the user; then link the package into the venv.
COPY . /opt/oilwater
RUN chmod 0755 reproduce.sh scripts/install.sh \
 && bash scripts/install.sh \
 && python -m artifact --help > /dev/null

# Numeric, so that runtimes that check for non-root (runAsNonRoot) need not resolve a name.
USER 10001:10001
CMD ["./reproduce.sh", "--help"]
