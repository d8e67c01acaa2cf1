# syntax=docker/dockerfile:1
# Build stage: wheels for the package and its dependencies (compilers live only here).
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN python -m venv /opt/reconciler \
    && /opt/reconciler/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/reconciler/bin/pip install --no-cache-dir .

# Final stage: the virtualenv only; no compiler, no pip cache, a non-root user.
FROM python:3.11-slim
# psql runs spec.databaseInitSQL with psql's own semantics, as PGO does.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/reconciler /opt/reconciler
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin reconciler
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["reconciler"]
CMD ["run"]
