# The OVES token bot as one image: `ovbot serve` by default; the same image runs
# `ovbot worker` and `ovbot db upgrade` (compose.yaml shows all three).
# Build: docker build -t ovbot .      Run: see README.md, "Deploying".

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json \
    PORT=8000 \
    DATABASE_URL=sqlite:////data/ovbot.db \
    OMNIVOLTAIC_EMULATOR_STATE=/data/emulator.db
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 ovbot \
    && mkdir /data && chown ovbot:ovbot /data
USER ovbot
# An empty working directory: everything the product needs ships in the wheel.
WORKDIR /home/ovbot
VOLUME ["/data"]
EXPOSE 8000
# Ready means the database answers and its schema is at head (503 says why otherwise).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=4)"
CMD ["ovbot", "serve"]
