#!/usr/bin/env bash
# Builds the previous build of certraft-node (the commit in .ci/previous-release: the last
# one before entries carried the lowest version that applies them and the feature gate) as
# target/debug/certraft-node-prev, for the mixed-version test (node/tests/it/upgrade.rs):
#
#   .ci/build-previous.sh && CERTRAFT_PREV_NODE_BIN=$PWD/target/debug/certraft-node-prev \
#     cargo test -p certraft-node --test it upgrade
#
# It shares this checkout's target dir, so only certraft-node itself is compiled; the binary
# is renamed in the temporary checkout so it never replaces this checkout's certraft-node.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
rev="$(tr -d '[:space:]' < .ci/previous-release)"
src="$root/target/prev-src"
git worktree prune
if [ ! -e "$src/.git" ]; then
  rm -rf "$src"
  git worktree add --detach "$src" "$rev" >/dev/null 2>&1
else
  git -C "$src" checkout --force --detach --quiet "$rev"
fi
# Only the binary's name changes: it is the previous build's code.
awk '/^\[\[bin\]\]/{bin=1} /^\[/{if($0!="[[bin]]")bin=0} bin && $0=="name = \"certraft-node\"" {$0="name = \"certraft-node-prev\""} {print}' \
  "$src/node/Cargo.toml" > "$src/node/Cargo.toml.prev" && mv "$src/node/Cargo.toml.prev" "$src/node/Cargo.toml"
CARGO_TARGET_DIR="$root/target" cargo build --quiet --manifest-path "$src/Cargo.toml" \
  -p certraft-node --bin certraft-node-prev
echo "$root/target/debug/certraft-node-prev"
