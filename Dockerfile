# The application image (docs/deploy.md). Two stages: `build` installs the package (not
# editable) and its pinned dependencies into a virtualenv; `runtime` gets only that virtualenv,
# the shipped flows and two system tools, and runs as a non-root user. One image serves every
# role: the web app (default command: gunicorn), `contactcenter worker`, and one-off commands
# (`contactcenter db upgrade`, `contactcenter models download NAME`).

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
RUN python -m venv /opt/venv

# Every package of pyproject's [tool.setuptools.packages.find] include, and the one module.
COPY pyproject.toml constraints.txt README.md ./
COPY contactcenter ./contactcenter
COPY crm_store ./crm_store
COPY ivr ./ivr
COPY speech ./speech
COPY campaigns ./campaigns
COPY telephony ./telephony
COPY devtools ./devtools
COPY web ./web
COPY webhooks.py ./

RUN /opt/venv/bin/pip install -c constraints.txt .


FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# espeak-ng: the default TTS_COMMAND, speaking the prompts of barge-in steps (docs/speech.md);
# graphviz: the console draws each flow's graph with dot.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng graphviz \
    && rm -rf /var/lib/apt/lists/*

# The app user owns only its state: models, data (SQLite file if used, recordings, imports)
# and caches, all under /var/lib/contactcenter (volumes in deploy/compose.yaml).
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/contactcenter \
        --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/contactcenter/models /var/lib/contactcenter/data \
        /var/lib/contactcenter/cache /etc/contactcenter \
    && chown -R app:app /var/lib/contactcenter

COPY --from=build /opt/venv /opt/venv
COPY call_flows.yaml /etc/contactcenter/call_flows.yaml

WORKDIR /var/lib/contactcenter
USER app

# Paths only; everything else (PUBLIC_BASE_URL, Twilio, DATABASE_URL of PostgreSQL …) comes
# from the deployment. The SQLite default is for a single-container trial.
ENV HOME=/var/lib/contactcenter \
    MODELS_DIR=/var/lib/contactcenter/models \
    DATABASE_URL=sqlite:////var/lib/contactcenter/data/contactcenter.db \
    RECORDINGS_DIR=/var/lib/contactcenter/data/recordings \
    IMPORTS_DIR=/var/lib/contactcenter/data/imports \
    TTS_CACHE_DIR=/var/lib/contactcenter/cache/tts \
    FLOWS_FILE=/etc/contactcenter/call_flows.yaml \
    PORT=8000

EXPOSE 8000

# Liveness of the web process; deploy/compose.yaml probes /readyz instead and gives the worker
# and the one-off services their own.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]

# gthread workers: a Media Streams websocket holds a thread. Migrations are not run here:
# `contactcenter db upgrade` runs once per release (the `migrate` service of compose.yaml).
CMD ["sh", "-c", "exec gunicorn -c python:contactcenter.gunicorn_conf --worker-class gthread --workers ${WEB_WORKERS:-2} --threads ${WEB_THREADS:-32} --timeout 30 --bind 0.0.0.0:${PORT} 'webhooks:create_app()'"]
