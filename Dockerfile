# One image for the api, worker and beat processes (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BPM_VAR_DIR=/app/var

# A CJK font so PDFs and emails render Chinese text; pango for weasyprint's PDF layout.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
RUN pip install . \
    && useradd --create-home --uid 10001 bpm \
    && mkdir -p /app/var \
    && chown -R bpm /app/var

USER bpm
EXPOSE 8000
CMD ["bpm", "serve"]
