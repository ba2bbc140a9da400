# The operator image: `juliarun operator` (also the juliarun CLI and emulator).
#   docker build -t juliarun-operator:0.2.0.dev0 .      (the tag: pyproject.toml's version; or hack/kind-load-image.sh)
# Runs as uid 65532 with a read-only root filesystem (the chart's securityContext).
# BASE: any image with Python 3.11 as python3 and its venv module. Without Docker Hub,
# hack/node/image.sh builds one from Debian bookworm (mmdebstrap) and passes it here.
# A release build pins it by digest (--build-arg BASE=python:3.11-slim@sha256:...), read
# from the registry it pulls from: the machines this repository is built on reach no image
# registry, so no digest is written here that nobody could check.
ARG BASE=python:3.11-slim

# Build a wheel-installed virtualenv in one stage, so the final image has no build leftovers.
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/juliarun
WORKDIR /src
# Only what the package build reads (see .dockerignore): pyproject names README.md as its
# readme and LICENSE as its license file; constraints.txt pins every dependency exactly.
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY operator/ operator/
# The cache mount keeps downloaded wheels between builds (not in the image): a source change
# rebuilds this layer without fetching every dependency again.
RUN --mount=type=cache,target=/root/.cache/pip /opt/juliarun/bin/pip install --constraint constraints.txt . \
 && /opt/juliarun/bin/juliarun --help >/dev/null

FROM ${BASE}
COPY --from=build /opt/juliarun /opt/juliarun
ENV PATH=/opt/juliarun/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    # No .pyc writes: the root filesystem is read-only at run time.
    PYTHONDONTWRITEBYTECODE=1 \
    # Some libraries look for a writable home; /tmp is an emptyDir in the chart.
    HOME=/tmp \
    # kopf names itself with getpass.getuser(), which without USER looks the uid up in
    # /etc/passwd; uid 65532 (or any uid a platform assigns) has no entry there.
    USER=juliarun \
    # Dozens of handler threads each get a malloc arena by default; two keep the heap
    # compact (bench/RESULTS.md: 3.3 GB -> 2.2 GB peak at 10,000 objects, with other changes).
    MALLOC_ARENA_MAX=2
# Numeric, so runAsNonRoot can verify it without an /etc/passwd entry.
USER 65532:65532
# /metrics, /healthz, /readyz (METRICS_PORT, the chart's metrics.port).
EXPOSE 9180
ENTRYPOINT ["juliarun"]
CMD ["operator"]
