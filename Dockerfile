FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STANDIN_DB=/data/standin.db \
    STANDIN_HOST=0.0.0.0 \
    PORT=8080 \
    WEB_CONCURRENCY=2

WORKDIR /app

# Dependencies first, pinned, so editing the code does not reinstall them.
COPY requirements-lock.txt ./
RUN pip install --no-cache-dir -r requirements-lock.txt

COPY __main__.py app.py database.py minirest.py cli.py seed.py server.py standin.py \
     traffic.py schema.sql openapi.json plugin_configs.json gunicorn.conf.py LICENSE ./
COPY static ./static

# Non-root; the database (and its -wal/-shm files) lives in /data, a volume it owns.
RUN groupadd --system --gid 10001 standin \
    && useradd --system --no-log-init --uid 10001 --gid standin --home-dir /app \
       --shell /usr/sbin/nologin standin \
    && mkdir /data \
    && chown standin:standin /data
# Numeric, so runtimes that enforce "run as non-root" can check it.
USER 10001:10001
VOLUME ["/data"]

EXPOSE 8080

# No curl in the slim image: python asks the readiness probe (200 once the database is
# seeded; a node stopped through /_standin/nodes does not turn it red, unlike /status).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_standin/ready' % os.environ.get('PORT', '8080'), timeout=4)"]

# The database is checked, and a new one seeded, before the API serves (gunicorn.conf.py).
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]
