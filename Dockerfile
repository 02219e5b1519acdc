# One image for web, workers, beat and flower; the GPU worker is built with
# REQUIREMENTS=requirements-gpu.txt (torch and GPT-SoVITS on top of requirements.txt).
# Every image can keep media on S3 (STORAGE_BACKEND=s3 in .env): requirements-s3.txt is always in.
FROM python:3.11-slim
ARG REQUIREMENTS=requirements.txt
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# gettext: msgfmt compiles the pages' messages below (voice_tts/locale).
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/*
COPY requirements*.txt ./
RUN pip install -r "${REQUIREMENTS}" -r requirements-s3.txt
COPY . .
# The pages' messages and static files are part of the image (whitenoise serves /app/static).
# STATIC_ROOT is outside /app/var, which a deployment may mount as a volume.
ENV STATIC_ROOT=/app/static
RUN DJANGO_SECRET_KEY=image-build-only python manage.py compilemessages --ignore clients -v 0 \
    && DJANGO_SECRET_KEY=image-build-only python manage.py collectstatic --noinput -v 0
RUN useradd --system --uid 10001 --home-dir /app carepill \
    && mkdir -p /app/media /app/var \
    && chown carepill /app/media /app/var
USER carepill
EXPOSE 8000
CMD ["gunicorn", "medicine_project.wsgi:application", "-c", "medicine_project/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
