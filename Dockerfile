# syntax=docker/dockerfile:1
#
# uptime-probe container image.
#
#   docker build -t uptime-probe:0.1.0 --build-arg VCS_REF="$(git rev-parse HEAD)" .
#   docker run --rm -p 127.0.0.1:9713:9713 --stop-timeout 15 \
#     -e CHAT_BASE_URL -e CHAT_API_TOKEN uptime-probe:0.1.0
#
# The variant for browser steps adds Debian's Chromium and Playwright (0.84 GB more, measured:
# docs/deployment.md, "The image with Chromium"):
#
#   docker build -t uptime-probe:0.1.0-chromium --build-arg WITH_CHROMIUM=true .
#   docker run --rm --init -p 127.0.0.1:9713:9713 ... uptime-probe:0.1.0-chromium
#
# Two stages from one base image: the builder turns the source tree into a wheel (exactly what
# tests/deploy/test_wheel.py builds and installs into a clean venv), the runtime installs that
# wheel and nothing else from the source tree. See docs/deployment.md.

# One tag for both stages, pinned to the patch release and the Debian release so a rebuild does
# not silently move to a new Python or a new distribution. Bump it deliberately.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from: .dockerignore keeps everything else out of the context.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .


FROM ${PYTHON_IMAGE} AS runtime

# `true`: Debian's chromium and the `browser` extra (Playwright), for browser steps. The
# default image has neither; a config with browser steps then fails to load, saying so.
ARG WITH_CHROMIUM=false

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UPTIME_PROBE_CONFIG=/etc/uptime-probe/probes.yaml \
    UPTIME_PROBE_DATA_DIR=/var/lib/uptime-probe

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER, and the
# StatefulSet's runAsUser/fsGroup (deploy/kubernetes/base/statefulset.yaml) use the same number.
RUN groupadd --system --gid 10001 uptime-probe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin uptime-probe

# Chromium from Debian's own archive (the same release as the base), never Playwright's
# browser download. Not pinned: Debian's security updates for it are the point.
# libatomic1: the Node.js that Playwright's wheel bundles as its driver links it, and
# neither Chromium nor a slim base brings it (without it the driver dies at start, and
# every browser step with it). fonts-liberation: metric-compatible fonts for the common
# font names pages ask for.
# hadolint ignore=DL3008
RUN if [ "$WITH_CHROMIUM" = "true" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends chromium fonts-liberation libatomic1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# The release and the commit come after Chromium: every RUN after an ARG is rebuilt when the
# ARG's value changes, and VCS_REF changes with every commit. So a new commit rebuilds the
# package below (as it must), and the build cache keeps the Chromium layer above.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="uptime-probe" \
      org.opencontainers.image.description="Synthetic monitoring of scripted user journeys, classified failures, exported to Prometheus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# The wheel is bind-mounted from the builder instead of COPYed, so it leaves no layer behind.
# Runtime dependencies are resolved from pyproject.toml's ranges at build time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    if [ "$WITH_CHROMIUM" = "true" ]; then \
      pip install "$(ls /wheels/uptime_probe-*.whl)[browser]"; \
    else \
      pip install /wheels/uptime_probe-*.whl; \
    fi

# The example configuration; a deployment mounts its own over /etc/uptime-probe. It reads
# CHAT_BASE_URL and CHAT_API_TOKEN from the environment: no secret is in the image. Copied
# from where the package keeps it (the repository's probes.yaml is a link to this file).
COPY --chown=root:root --chmod=0644 src/uptime_probe/examples/probes.yaml /etc/uptime-probe/probes.yaml

# State (SQLite store) lives in the volume, owned by the runtime user; with a read-only root
# filesystem it is the only writable place besides /tmp. It is also the working directory, so
# nothing the daemon writes relative to its cwd can land on the read-only image layers.
RUN mkdir -p /var/lib/uptime-probe \
 && chown 10001:10001 /var/lib/uptime-probe \
 && chmod 0750 /var/lib/uptime-probe
WORKDIR /var/lib/uptime-probe
VOLUME ["/var/lib/uptime-probe"]

USER 10001:10001

EXPOSE 9713

# The daemon drains in-flight checks on SIGTERM within 10 s: give it longer before SIGKILL
# (docker run --stop-timeout 15, compose stop_grace_period, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

# No curl/wget in the image: the interpreter that is already there does the request. Override
# the URL with UPTIME_PROBE_HEALTHCHECK_URL if server.listen moves off port 9713.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('UPTIME_PROBE_HEALTHCHECK_URL', 'http://127.0.0.1:9713/healthz'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["uptime-probe"]
CMD ["run", "-c", "/etc/uptime-probe/probes.yaml"]
