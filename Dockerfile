# monitor as a container: non-root, the database in the /data volume, the config mounted in.
#   docker build -t monitor .
#   docker run -d -v monitor-data:/data -v "$PWD/monitor.toml:/etc/monitor/monitor.toml:ro" \
#       monitor run -c /etc/monitor/monitor.toml
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY migrations ./migrations
COPY seeds ./seeds
RUN pip install '.[postgres]' && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data monitor \
    && mkdir -p /data /etc/monitor && chown monitor /data
USER monitor
WORKDIR /data
VOLUME ["/data"]

ENTRYPOINT ["monitor"]
CMD ["run"]
