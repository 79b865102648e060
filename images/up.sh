#!/usr/bin/env bash
# Brings up a compose topology and joins its nodes: the first node bootstraps the cluster,
# then each other node gets its own single-use join token from it.
#
#   images/up.sh pair      # compose-pair.yml: appliance-a, appliance-b, witness
#   images/up.sh traffic   # compose-traffic.yml: core-1..3 voters, traffic-1..2 learners
#
# Env: CERTRAFT_IMAGE (default certraft-node:dev, see images/build.sh), COMPOSE_PROJECT_NAME.
# Re-running is safe: a node whose volume already holds a cluster ignores its join token.
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
compose() { docker-compose -f "$file" "$@"; }

compose up -d "$first"
echo "waiting for $first to bootstrap..."
for _ in $(seq 1 60); do
    if compose exec -T "$first" /certraft-node health --ready >/dev/null 2>&1; then break; fi
    sleep 1
done
compose exec -T "$first" /certraft-node health --ready

for j in "${joiners[@]}"; do
    IFS=: read -r svc role var <<<"$j"
    if compose ps -q "$svc" | grep -q .; then
        echo "$svc exists already; left as it is"
        continue
    fi
    token="$(compose exec -T "$first" /certraft cluster join-token --role "$role" --ttl 15m)"
    export "$var=$token"
    compose up -d --no-recreate "$svc"
    echo "$svc joining as $role"
done
echo "cluster status (the admin token: docker cp $(compose ps -q "$first"):/data/admin.token .):"
compose exec -T "$first" /certraft cluster status
