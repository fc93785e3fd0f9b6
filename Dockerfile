# asu: one image for every role; docker-compose.yml picks the command.
#   server:  gunicorn (the default command)
#   worker:  flask --app asu worker      (needs user namespaces for bubblewrap)
#   janitor: flask --app asu janitor update --interval 600
FROM python:3.11-slim-bookworm

# What the ImageBuilders need to run, and bubblewrap to sandbox them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bubblewrap ca-certificates e2fsprogs file gawk make perl rsync \
        squashfs-tools unzip util-linux xz-utils zstd \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/asu
COPY requirements.txt setup.py ./
RUN pip install --no-cache-dir -r requirements.txt
COPY asu ./asu
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --user-group --home-dir /srv/asu \
        --shell /usr/sbin/nologin asu \
    && mkdir -p /srv/asu/public /srv/asu/cache \
    && chown asu:asu /srv/asu/public /srv/asu/cache

# config.yml may be mounted at /srv/asu/config.yml; ASU_* variables override it.
ENV ASU_PUBLIC_PATH=/srv/asu/public \
    ASU_CACHE_PATH=/srv/asu/cache \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "4", "--access-logfile", "-", "asu:create_app()"]
