# FedMuscle server: Flower's SuperLink image + CPU torch + this project.
# `fedmuscle server` starts flower-superlink (Fleet API gRPC :9092, Control API
# :8000) and submits the run with `flwr run`; the ServerApp runs in this
# container (SuperLink isolation "subprocess"), so it needs the project too.
#
#   docker build -f docker/server.Dockerfile -t fedmuscle/server:0.1.0 .
ARG FLWR_VERSION=1.39.0
FROM flwr/superlink:${FLWR_VERSION}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /app

RUN python -m pip install --no-cache-dir --index-url ${TORCH_INDEX_URL} \
        "torch>=2.6" "torchvision>=0.21"

COPY --chown=app:app pyproject.toml README.md ./
COPY --chown=app:app src ./src
COPY --chown=app:app clients ./clients
COPY --chown=app:app server ./server
RUN sed -i 's/.*"flwr\[simulation\].*//' pyproject.toml \
 && python -m pip install --no-cache-dir . \
 && python -c "import flwr, fedmuscle_flwr; assert flwr.__version__ == '${FLWR_VERSION}'"

ENV FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    HF_HUB_OFFLINE=1
EXPOSE 9092 8000
VOLUME ["/app/runs"]
# `fedmuscle server --preset NAME --address 0.0.0.0:9092 (--tls-dir D | --insecure)`
ENTRYPOINT ["fedmuscle"]
CMD ["server", "--help"]
