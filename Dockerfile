# The oilwater artifact image (docs/container.md).
#
#   docker build -t oilwater --build-arg OILWATER_GIT_COMMIT="$(git rev-parse HEAD)" .
#   docker run --rm --gpus all -v "$DATA":/data:ro -v "$RESULTS":/results oilwater ./reproduce.sh table2
#
# Needs BuildKit (the default builder since Docker Engine 23) or podman for RUN --mount.

# --- base: a Debian with CPython 3.11 ---------------------------------------------------------------
# No CUDA base image: requirements.lock pins torch 2.14.1 / torchvision 0.29.1 built for CUDA 13.0, and
# those pip wheels carry their CUDA user-space libraries (nvidia-cuda-runtime, cuDNN, cuBLAS, NCCL ...),
# which torch loads. A GPU needs only the host driver, which the NVIDIA Container Toolkit mounts in
# when the NVIDIA_* variables below are set. The lock is for CPython 3.11 (cp311 wheels), which the
# base provides: python:3.11-slim-bookworm for users; CI builds the same recipe on Debian bookworm's
# own python3.11 (tests/container/build-and-smoke.sh, a base made with mmdebstrap), since it reaches no
# container registry. Any base with python3.11, its venv module and useradd works.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="oilwater" \
      org.opencontainers.image.description="Artifact for 'Like Oil and Water: Group Robustness and Poisoning Defenses Don't Mix'"

# NVIDIA_REQUIRE_CUDA: the toolkit refuses, with a clear message, a host driver too old for the wheels'
# CUDA 13.0 instead of torch failing inside (tests/test_container.py checks it against the lock).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0"

RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/python --version

# The image's python is the venv's: scripts/install.sh without VENV_DIR installs into it.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /opt/oilwater

# Dependencies first, from the lock only, so that editing the sources does not redo this layer (and no
# ARG that changes per commit is declared above it). Behind a TLS-intercepting proxy, pass its CA bundle
# as a build secret (--secret id=pip_ca,src=FILE): used for the downloads, never stored in the image.
COPY requirements.lock ./requirements.lock
COPY scripts/install.sh ./scripts/install.sh
RUN --mount=type=secret,id=pip_ca \
    if [ -f /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && bash scripts/install.sh --deps-only

# ImageNet weights for the pretrained ResNets, in the torch hub cache that artifact/models.py reads:
# torchvision's IMAGENET1K_V1 files (not DEFAULT, which is V2 for resnet50). download_url_to_file
# checks that the file's sha256 starts with the hash part of its name. OILWATER_WEIGHTS=skip leaves
# the folder empty (a build that reaches no download host; the tiny and smoke presets need none), to
# be filled by a volume at run time (docs/container.md).
ARG OILWATER_WEIGHTS=download
ENV TORCH_HOME=/opt/torch
RUN --mount=type=secret,id=pip_ca \
    case "$OILWATER_WEIGHTS" in download|skip) ;; \
      *) echo "OILWATER_WEIGHTS=$OILWATER_WEIGHTS: use download or skip" >&2; exit 1 ;; esac \
 && mkdir -p "$TORCH_HOME/hub/checkpoints" \
 && if [ "$OILWATER_WEIGHTS" = download ]; then \
      if [ -f /run/secrets/pip_ca ]; then export SSL_CERT_FILE=/run/secrets/pip_ca; fi; \
      python -c "import torchvision.models as m; \
assert m.ResNet18_Weights.IMAGENET1K_V1.url.endswith('/resnet18-f37072fd.pth'); \
assert m.ResNet50_Weights.IMAGENET1K_V1.url.endswith('/resnet50-0676ba61.pth')" || exit 1; \
      for f in resnet18-f37072fd.pth resnet50-0676ba61.pth; do \
        h="${f#*-}"; h="${h%.pth}"; \
        python -c "import sys, torch.hub; torch.hub.download_url_to_file(sys.argv[1], sys.argv[2], hash_prefix=sys.argv[3], progress=False)" \
          "https://download.pytorch.org/models/$f" "$TORCH_HOME/hub/checkpoints/$f" "$h" || exit 1; \
      done; \
    fi \
 && chmod -R a+rX "$TORCH_HOME"

# Mount points (documented, not VOLUMEs: a forgotten -v should fail loudly rather than write the
# results into an anonymous volume). The decoded-image cache goes under /results so that it
# survives the container; HOME-like paths are in /tmp so that any --user uid works.
RUN groupadd --gid 10001 oilwater \
 && useradd --create-home --no-log-init --uid 10001 --gid 10001 oilwater \
 && mkdir -p /data /results \
 && chown 10001:10001 /results

# The commit changes with every build, so it comes after the heavy layers, which stay cached.
ARG OILWATER_GIT_COMMIT=""
LABEL org.opencontainers.image.revision="${OILWATER_GIT_COMMIT}"
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
