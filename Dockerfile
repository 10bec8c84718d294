# FlowerHub's one Python image: every service of docker-compose.yml runs a `flowerhub` verb.
# The UI's front-end libraries (uPlot, Tabulator) come from the npm lock file, in a node stage.
FROM node:20-slim AS ui-libraries
WORKDIR /ui
COPY flowerhub/ui/web/package.json flowerhub/ui/web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY edge ./edge
COPY streams ./streams
COPY analytics ./analytics
COPY flowerhub ./flowerhub
COPY --from=ui-libraries /ui/node_modules /opt/flowerhub-ui/node_modules
ENV FLOWERHUB_UI_NODE_MODULES=/opt/flowerhub-ui/node_modules
RUN pip install . && useradd --create-home --uid 10001 flowerhub \
    && mkdir -p /data && chown flowerhub /data
USER flowerhub
VOLUME ["/data"]
ENTRYPOINT ["flowerhub"]
CMD ["--help"]
