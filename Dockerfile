# FlowerHub's one Python image: every service of docker-compose.yml runs a `flowerhub` verb.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY edge ./edge
COPY streams ./streams
COPY analytics ./analytics
COPY flowerhub ./flowerhub
RUN pip install . && useradd --create-home --uid 10001 flowerhub \
    && mkdir -p /data && chown flowerhub /data
USER flowerhub
VOLUME ["/data"]
ENTRYPOINT ["flowerhub"]
CMD ["--help"]
