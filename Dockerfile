# OmniCX: one image for the API (`omnicx serve`) and the workers (`omnicx worker`).
# Build: docker build -t omnicx .   Run the whole layout: docker compose up
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install --no-cache-dir --constraint constraints.txt --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 omnicx
COPY --from=build /install /usr/local
USER omnicx
WORKDIR /home/omnicx
ENV OMNICX_HOST=0.0.0.0 \
    OMNICX_PORT=8000 \
    OMNICX_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
# --no-migrate: the `migrate` service of docker-compose.yml applies migrations once.
CMD ["omnicx", "serve", "--no-migrate", "--workers", "2"]
