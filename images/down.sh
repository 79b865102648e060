#!/usr/bin/env bash
# Removes everything images/up.sh made for a topology: its containers, its network and its
# volumes (data and unseal keys: the cluster is gone for good).
#
#   images/down.sh pair|traffic
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
    pair) file="$here/compose-pair.yml" ;;
    traffic) file="$here/compose-traffic.yml" ;;
    *) echo "usage: $0 pair|traffic" >&2; exit 2 ;;
esac
project="${COMPOSE_PROJECT_NAME:-certraft-$1}"
docker-compose -p "$project" -f "$file" down --volumes --remove-orphans --timeout 10
left="$(docker ps -aq --filter "label=com.docker.compose.project=$project")$(docker volume ls -q --filter "label=com.docker.compose.project=$project")"
if [ -n "$left" ]; then
    echo "error: left behind from $project: $left" >&2
    exit 1
fi
echo "removed $project (containers, network, volumes)"
