#!/bin/sh
# Run the compose demo to its end and exit with the server's status (run it from the
# repository root, after docker/prepare-demo.sh and `docker-compose build`):
#
#   docker/demo.sh [--tls] [--resume runs/<session>]
#
#   --tls       add docker/with-tls.yml (TLS + SuperNode authentication; prepare the
#               certificates first: docker/prepare-demo.sh --certs)
#   --resume    continue an interrupted session (its folder under ./runs): the finished
#               run is kept, the other resumes from its last checkpoint
#
# Status: 0 when both runs completed and the report is written; the server's status
# otherwise; 130 after Ctrl-C. Why a wrapper: `docker-compose up --exit-code-from
# superlink` gives the server's status when the run ends by itself, but Compose v1
# handles Ctrl-C as a graceful stop and then exits 0 although every container exited
# 130. Here Ctrl-C (SIGINT to the foreground process group, i.e. to Compose too) lets
# Compose stop the containers; then the status is read from the server's container.
# The containers are left stopped (for `docker-compose logs`); `docker-compose down`
# removes them. FEDMUSCLE_COMPOSE picks the Compose command (default: docker-compose
# where installed, else `docker compose`); COMPOSE_PROJECT_NAME is honoured.
set -u

FILES="-f docker-compose.yml"
TLS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tls) FILES="$FILES -f docker/with-tls.yml" TLS=" --tls"; shift ;;
        --resume)
            [ $# -ge 2 ] || { echo "--resume needs a session folder under ./runs" >&2; exit 2; }
            [ -d "$2" ] || { echo "no session folder $2" >&2; exit 2; }
            # ./runs is mounted at /app/runs in the server's container
            FEDMUSCLE_RESUME=/app/runs/$(basename "$2"); export FEDMUSCLE_RESUME; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (docker/demo.sh --help)" >&2; exit 2 ;;
    esac
done
[ -f docker-compose.yml ] || { echo "run me from the repository root" >&2; exit 2; }
[ -f .env ] || { echo "no .env: run docker/prepare-demo.sh first" >&2; exit 2; }
if [ -z "${FEDMUSCLE_COMPOSE:-}" ]; then
    if command -v docker-compose >/dev/null 2>&1; then FEDMUSCLE_COMPOSE=docker-compose
    else FEDMUSCLE_COMPOSE="docker compose"; fi
fi

INTERRUPTED=0
trap 'INTERRUPTED=1' INT TERM   # Compose gets the same Ctrl-C and stops the containers
# shellcheck disable=SC2086  # FILES and FEDMUSCLE_COMPOSE are word lists
$FEDMUSCLE_COMPOSE $FILES up --exit-code-from superlink
STATUS=$? COMPOSE_STATUS=$?
trap - INT TERM

# the server's container: its exit code is the demo's result
# (v1's `ps` lists stopped service containers; v2's only with -a)
CID=$($FEDMUSCLE_COMPOSE $FILES ps -q superlink 2>/dev/null | head -n 1)
[ -n "$CID" ] || CID=$($FEDMUSCLE_COMPOSE $FILES ps -a -q superlink 2>/dev/null | head -n 1)
STATE=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$CID" 2>/dev/null)
case "$STATE" in
    "exited "*) SERVER=${STATE#exited } ;;
    *) SERVER="" ;;   # never started, or not stopped
esac
if [ -n "$SERVER" ] && [ "$SERVER" != 0 ]; then
    STATUS=$SERVER    # the server failed, or was stopped (130) before its results
elif [ "$INTERRUPTED" = 1 ] && [ "$SERVER" != 0 ]; then
    STATUS=130        # stopped before the server's container ended
fi                    # else Compose's: 0 once the results are written, also after Ctrl-C
if [ "$STATUS" = 130 ]; then
    # the session folder the server named in its last line (--resume /app/runs/NAME)
    SESSION=$(docker logs "$CID" 2>&1 | sed -n 's|.*--resume /app/runs/\([^ )]*\).*|\1|p' | tail -n 1)
    echo "demo interrupted: status 130 (the server's container: ${SERVER:-not ended};" \
        "$FEDMUSCLE_COMPOSE: $COMPOSE_STATUS). Continue the session:" \
        "docker/demo.sh$TLS --resume runs/${SESSION:-<session>}; or start afresh:" \
        "docker/demo.sh$TLS (remove runs/${SESSION:-<session>} if you like)." \
        "The stopped containers: $FEDMUSCLE_COMPOSE logs, $FEDMUSCLE_COMPOSE down" >&2
fi
exit "$STATUS"
