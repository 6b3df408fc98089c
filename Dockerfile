# The stream-edits worker. Build: `docker build -t stream-edits .`; run it with docker-compose.yml,
# which also starts Kafka and creates the topics first.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream_edits ./stream_edits
# stream_edits/contract links here: the topic contract's JSON Schemas ship in the package.
COPY topics ./topics
RUN pip install . \
    && useradd --system --create-home --uid 10001 app \
    && mkdir -p /data \
    && chown app /data

USER app
# RocksDB tables live under /data (mount a volume there to keep them across restarts); the web
# server listens on every interface so that the published port reaches it.
ENV STREAM_EDITS_DATA_DIR=/data/worker \
    STREAM_EDITS_WEB_HOST=0.0.0.0 \
    STREAM_EDITS_WEB_PORT=6066
EXPOSE 6066

ENTRYPOINT ["stream-edits"]
CMD ["worker", "--loglevel", "info"]
