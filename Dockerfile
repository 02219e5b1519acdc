# One image for web, workers, beat and flower; the GPU worker is built with
# REQUIREMENTS=requirements-gpu.txt (torch and GPT-SoVITS on top of requirements.txt) and
# BUILD_TOOLS="build-essential cmake" for its builder stage (compose.yaml passes both).
# Every image can keep media on S3 (STORAGE_BACKEND=s3 in .env): requirements-s3.txt is always in.
# Builds with the classic builder as well as BuildKit (no BuildKit-only syntax). docs/deployment.md.

# --- Stage 1 (builder): every requirement installed into a virtualenv at /opt/venv. Compilers
# only when BUILD_TOOLS is set: the GPU image's pyopenjtalk and jieba_fast are source packages.
FROM python:3.11-slim AS builder
ARG REQUIREMENTS=requirements.txt
ARG BUILD_TOOLS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN if [ -n "${BUILD_TOOLS}" ]; then \
      apt-get update && apt-get install -y --no-install-recommends ${BUILD_TOOLS} && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /build
COPY requirements*.txt ./
# --use-pep517: old setup.py-only packages build in an isolated environment (setuptools, wheel),
# whatever the base image has installed. Compiles use every core (make, cmake).
RUN python -m venv /opt/venv \
    && MAKEFLAGS="-j$(nproc)" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
       /opt/venv/bin/pip install --use-pep517 -r "${REQUIREMENTS}" -r requirements-s3.txt

# --- Stage 2 (runtime): the virtualenv, copied; no compiler, no build tools.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /app
# gettext: msgfmt compiles the pages' messages below (voice_tts/locale).
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/*
COPY --from=builder /opt/venv /opt/venv
COPY . .
# The pages' messages and static files are part of the image (whitenoise serves /app/static,
# world-readable: settings.py gives static files their own permissions, not the uploads' 0640).
# STATIC_ROOT is outside /app/var, which a deployment may mount as a volume.
ENV STATIC_ROOT=/app/static
RUN DJANGO_SECRET_KEY=image-build-only python manage.py compilemessages --ignore clients -v 0 \
    && DJANGO_SECRET_KEY=image-build-only python manage.py collectstatic --noinput -v 0
# The app user owns its home (gunicorn and celery keep state there) and the two writable paths.
RUN useradd --system --uid 10001 --create-home --home-dir /home/carepill --shell /usr/sbin/nologin carepill \
    && mkdir -p /app/media /app/var \
    && chown carepill /app/media /app/var
USER carepill
EXPOSE 8000
CMD ["gunicorn", "medicine_project.wsgi:application", "-c", "medicine_project/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
