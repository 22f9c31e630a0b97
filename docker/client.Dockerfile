# FedMuscle client: Flower's SuperNode image + CPU torch + this project.
# The ClientApp runs inside this container (SuperNode isolation "subprocess"),
# so the private data is mounted HERE (see docker-compose.yml).
#
#   docker build -f docker/client.Dockerfile -t fedmuscle/client:0.1.0 .
#   GPU: docker build -f docker/client.Dockerfile \
#          --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 \
#          -t fedmuscle/client:0.1.0-gpu .      (run with --gpus all / compose gpu.yml)
ARG FLWR_VERSION=1.39.0
FROM flwr/supernode:${FLWR_VERSION}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /app

# torch first, from the CPU (or CUDA) index, so pip does not pick another build
RUN python -m pip install --no-cache-dir --index-url ${TORCH_INDEX_URL} \
        "torch>=2.6" "torchvision>=0.21"

COPY --chown=app:app pyproject.toml README.md ./
COPY --chown=app:app src ./src
COPY --chown=app:app clients ./clients
COPY --chown=app:app server ./server
# flwr is already in the base image at the pinned version: drop it from the deps
RUN sed -i 's/.*"flwr\[simulation\].*//' pyproject.toml \
 && python -m pip install --no-cache-dir . \
 && python -c "import flwr, fedmuscle_flwr; assert flwr.__version__ == '${FLWR_VERSION}'"

ENV FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    HF_HUB_OFFLINE=1 \
    FEDMUSCLE_STATE_DIR=/state
VOLUME ["/state"]
# `fedmuscle client --server HOST:9092 --profile NAME (--tls-ca F | --insecure) ...`
ENTRYPOINT ["fedmuscle"]
CMD ["client", "--help"]
