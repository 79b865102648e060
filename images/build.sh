#!/usr/bin/env bash
# Builds the certraft-node image (FROM scratch) from this checkout.
#
#   images/build.sh [TAG]        default tag: certraft-node:dev
#   images/build.sh --binaries   only the static binaries; prints their directory
#                                (images/debian/build-deb.sh packages them)
#
# The binaries are linked statically against glibc (RUSTFLAGS +crt-static), so the image
# needs no libc. Name resolution still works: glibc >= 2.34 has the files and dns NSS
# modules built in, and Docker gives every container /etc/hosts and /etc/resolv.conf.
# Env: PROFILE (default release), CARGO_TARGET_DIR (default target/static).
set -euo pipefail
binaries_only=false
if [ "${1:-}" = "--binaries" ]; then binaries_only=true; shift; fi
tag="${1:-certraft-node:dev}"
root="$(cd "$(dirname "$0")/.." && pwd)"
profile="${PROFILE:-release}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-$root/target/static}"

echo "building static certraft-node and certraft ($triple, profile $profile) into $target_dir" >&2
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --manifest-path "$root/Cargo.toml" --locked --profile "$profile" \
    --target "$triple" --target-dir "$target_dir" -p certraft-node -p certraft-cli \
    --bin certraft-node --bin certraft

dir="$target_dir/$triple/$([ "$profile" = dev ] && echo debug || echo "$profile")"
if $binaries_only; then
    echo "$dir"
    exit 0
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/data" "$ctx/unseal"
cp "$dir/certraft-node" "$dir/certraft" "$root/images/Dockerfile" "$ctx/"
# The release profile keeps line tables for profiling; the image does not need them.
strip "$ctx/certraft-node" "$ctx/certraft"
for b in certraft-node certraft; do
    # A dynamically linked binary names its loader (PT_INTERP); a static one does not.
    if readelf -l "$ctx/$b" | grep -q 'program interpreter'; then
        echo "error: $dir/$b is dynamically linked; a scratch image cannot run it" >&2
        exit 1
    fi
done
DOCKER_BUILDKIT=0 docker build --quiet -t "$tag" "$ctx" >/dev/null 2>&1 \
    || docker build -t "$tag" "$ctx"
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MiB", $1/1048576}'))"
