# The application image: slim Python 3.11, non-root, gunicorn with threads (Media Streams
# websockets hold a thread each). Speech models are mounted or downloaded into /app/models.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# espeak-ng: the default TTS_COMMAND, speaking the prompts of barge-in steps (docs/speech.md);
# graphviz: the console draws each flow's graph with dot.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng graphviz \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml constraints.txt README.md ./
COPY contactcenter ./contactcenter
COPY crm_store ./crm_store
COPY ivr ./ivr
COPY speech ./speech
COPY campaigns ./campaigns
COPY telephony ./telephony
COPY devtools ./devtools
COPY web ./web
COPY webhooks.py call_flows.yaml alembic.ini ./
COPY models/manifest.json ./models/manifest.json

RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/var /app/models \
    && chown -R app:app /app/var /app/models

USER app

ENV DATABASE_URL=sqlite:////app/var/contactcenter.db \
    FLOWS_FILE=/app/call_flows.yaml \
    TTS_CACHE_DIR=/app/var/tts-cache \
    PORT=8000

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/healthz', timeout=2)"

# Run migrations first (`contactcenter db upgrade`) as a one-off container in production.
CMD ["sh", "-c", "exec gunicorn --worker-class gthread --workers 2 --threads 32 --timeout 30 --bind 0.0.0.0:${PORT} 'webhooks:create_app()'"]
