#!/bin/sh
# Prepare the compose demo in the repository root (run it from there):
#   .env             FEDMUSCLE_UID/FEDMUSCLE_GID: the containers run as you, so that
#                    runs/ and state/ stay yours and the 0600 keys of certs/ are readable;
#                    never as root: run as root, the owner of this checkout, or the
#                    image's own user app (49999) where root owns it
#   runs/            the server's run folders
#   state/client-N   each client's model/optimiser state (between runs)
#   data/server      the server's data, data/client-N each client's (Fashion-MNIST IDX
#                    files in <dir>/fashion-mnist/): every node needs them for the public
#                    (unlabelled) set, clients 1, 2 and 4 also for their private data;
#                    client 3 trains on the digits bundled with scikit-learn
#   certs/           with --certs: CA, server certificate and 4 node keys, made by
#                    `fedmuscle certs` in the server image (build it first)
#
#   docker/prepare-demo.sh [--certs] [FASHION_MNIST_DIR]
#
# FASHION_MNIST_DIR defaults to /usr/share/datasets/fashion-mnist (Debian/Ubuntu package
# dataset-fashion-mnist, or `fedmuscle data prepare fashion-mnist`). FEDMUSCLE_UID and
# FEDMUSCLE_GID in the environment choose another user (not 0); run as root, the script
# makes that user own what it creates.
set -eu

CERTS=0
if [ "${1:-}" = --certs ]; then CERTS=1; shift; fi
SRC=${1:-/usr/share/datasets/fashion-mnist}
# the containers never run as root: as root, take the checkout's owner, else app (49999)
if [ "$(id -u)" = 0 ]; then
    OWNER=$(stat -c %u .)
    if [ "$OWNER" = 0 ]; then DEFAULT_UID=49999 DEFAULT_GID=49999
    else DEFAULT_UID=$OWNER DEFAULT_GID=$(stat -c %g .); fi
else
    DEFAULT_UID=$(id -u) DEFAULT_GID=$(id -g)
fi
USER_ID=${FEDMUSCLE_UID:-$DEFAULT_UID}
GROUP_ID=${FEDMUSCLE_GID:-$DEFAULT_GID}
if [ "$USER_ID" = 0 ] || [ "$GROUP_ID" = 0 ]; then
    echo "FEDMUSCLE_UID/FEDMUSCLE_GID 0: the containers never run as root; choose another" >&2
    exit 2
fi
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

[ -f docker-compose.yml ] || { echo "run me from the repository root" >&2; exit 2; }
for f in $FILES; do
    [ -r "$SRC/$f" ] || {
        echo "no $SRC/$f: install dataset-fashion-mnist or pass the folder holding it" >&2
        exit 2
    }
done

printf 'FEDMUSCLE_UID=%s\nFEDMUSCLE_GID=%s\n' "$USER_ID" "$GROUP_ID" > .env
mkdir -p runs
for i in 1 2 3 4; do mkdir -p "state/client-$i"; done
for node in server client-1 client-2 client-3 client-4; do
    mkdir -p "data/$node/fashion-mnist"
    for f in $FILES; do
        # a hard link where possible (no copy), else a copy
        ln -f "$SRC/$f" "data/$node/fashion-mnist/$f" 2>/dev/null \
            || cp "$SRC/$f" "data/$node/fashion-mnist/$f"
    done
done
chmod -R a+rX data
if [ "$(id -u)" = 0 ]; then chown -R "$USER_ID:$GROUP_ID" runs state; fi

if [ "$CERTS" = 1 ]; then
    mkdir -p certs
    if [ "$(id -u)" = 0 ]; then chown "$USER_ID:$GROUP_ID" certs; fi
    docker run --rm --network none --user "$USER_ID:$GROUP_ID" -v "$PWD/certs:/certs" \
        fedmuscle/server:0.1.0 certs --out /certs --host superlink --nodes 4
fi
echo "ready: .env (uid $USER_ID, gid $GROUP_ID), runs/, state/, data/$( [ "$CERTS" = 1 ] && echo ', certs/')"
