#!/usr/bin/env bash
# Brings up a compose topology and joins its nodes: the first node bootstraps the cluster,
# then each other node gets its own single-use join token from it; finally every node is
# checked to hold its role in the cluster.
#
#   images/up.sh pair      # compose-pair.yml: appliance-a, appliance-b, witness
#   images/up.sh traffic   # compose-traffic.yml: core-1..3 voters, traffic-1..2 learners
#   images/down.sh pair    # removes the containers, the network and the volumes again
#
# Each topology is its own compose project (certraft-pair, certraft-traffic; override with
# COMPOSE_PROJECT_NAME), so both can run at once. Env: CERTRAFT_IMAGE (default
# certraft-node:dev, see images/build.sh); the host ports are in the compose files.
# Re-running is safe: nodes that are members are left alone; a node that is not (it never
# got a token, or its join failed) is started again with a fresh token.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
    pair) file="$here/compose-pair.yml"; first=appliance-a
          joiners=("appliance-b:voter:B_JOIN_TOKEN" "witness:witness:W_JOIN_TOKEN") ;;
    traffic) file="$here/compose-traffic.yml"; first=core-1
          joiners=("core-2:voter:CORE_2_JOIN_TOKEN" "core-3:voter:CORE_3_JOIN_TOKEN"
                   "traffic-1:learner:TRAFFIC_1_JOIN_TOKEN" "traffic-2:learner:TRAFFIC_2_JOIN_TOKEN") ;;
    *) echo "usage: $0 pair|traffic" >&2; exit 2 ;;
esac
project="${COMPOSE_PROJECT_NAME:-certraft-$1}"
compose() { docker-compose -p "$project" -f "$file" "$@"; }
cli() { compose exec -T "$first" /certraft "$@"; }

image="${CERTRAFT_IMAGE:-certraft-node:dev}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "error: no image $image; build it with images/build.sh (or set CERTRAFT_IMAGE)" >&2
    exit 1
fi

compose up -d "$first"
echo "waiting for $first to bootstrap..."
for _ in $(seq 1 60); do
    if compose exec -T "$first" /certraft-node health --ready >/dev/null 2>&1; then break; fi
    sleep 1
done
if ! compose exec -T "$first" /certraft-node health --ready; then
    echo "error: $first did not become ready; its log:" >&2
    compose logs --tail 30 "$first" >&2
    exit 1
fi

# The members' names as the leader knows them (each node advertises its service name).
members() { cli cluster status --json | tr -d ' \n' | grep -o '"admin_addr":"[^"]*"' | sed 's/.*:"//; s/:[0-9]*"$//' ; }
is_member() { members | grep -qx "$1"; }

for j in "${joiners[@]}"; do
    IFS=: read -r svc role var <<<"$j"
    if compose ps -q "$svc" | grep -q . && is_member "$svc"; then
        echo "$svc is a member already; left as it is"
        continue
    fi
    token="$(cli cluster join-token --role "$role" --ttl 15m)"
    export "$var=$token"
    compose up -d --force-recreate "$svc"
    echo "$svc joining as $role"
done

echo "checking that every node joined..."
want=("$first")
for j in "${joiners[@]}"; do want+=("${j%%:*}"); done
missing=()
for _ in $(seq 1 90); do
    missing=()
    have="$(members 2>/dev/null || true)"
    for svc in "${want[@]}"; do
        grep -qx "$svc" <<<"$have" || missing+=("$svc")
    done
    [ ${#missing[@]} -eq 0 ] && break
    sleep 1
done
if [ ${#missing[@]} -gt 0 ]; then
    for svc in "${missing[@]}"; do
        echo "error: $svc did not join; its log:" >&2
        compose logs --tail 20 "$svc" >&2
    done
    echo "run $0 $1 again to retry those nodes with fresh tokens, or images/down.sh $1 to start over" >&2
    exit 1
fi
cli cluster status
echo
echo "every node joined. The CLI needs no flags on a core node:"
echo "  docker exec ${project}_${first}_1 /certraft cert list"
echo "import from the host through stdin (the image has no shell and no /tmp):"
echo "  docker exec -i ${project}_${first}_1 /certraft cert import --name www - < bundle.pem"
