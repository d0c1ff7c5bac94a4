"""gunicorn settings for the stand-in (the Docker image uses them; command-line flags win).

PORT (default 8080) and WEB_CONCURRENCY (default 2) come from the environment. Sync workers
only: sqlite3 blocks in C, which suits one request per process and starves event-loop workers.
"""

import os

bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
