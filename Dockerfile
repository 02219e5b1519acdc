# One image for web, workers, beat and flower; the GPU worker is built with
# REQUIREMENTS=requirements-gpu.txt (torch and GPT-SoVITS on top of requirements.txt).
# Every image can keep media on S3 (STORAGE_BACKEND=s3 in .env): requirements-s3.txt is always in.
FROM python:3.11-slim
ARG REQUIREMENTS=requirements.txt
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements*.txt ./
RUN pip install -r "${REQUIREMENTS}" -r requirements-s3.txt
COPY . .
RUN useradd --system --uid 10001 --home-dir /app carepill \
    && mkdir -p /app/media /app/var \
    && chown carepill /app/media /app/var
USER carepill
EXPOSE 8000
CMD ["gunicorn", "medicine_project.wsgi:application", "-c", "medicine_project/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
