#!/usr/bin/env bash
# Builds the Debian package `certraft` (certraft-node, the certraft CLI, the hardened systemd
# unit) from the static binaries images/build.sh makes, with dpkg-deb: no other tool.
#
#   images/debian/build-deb.sh [OUT_DIR]    default OUT_DIR: target/debian
#
# Prints the path of the .deb. The binaries are static (glibc linked in), so the package
# depends on nothing; it installs on Debian 11+ and derivatives, amd64 (the build host's
# architecture).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/debian}"
bin_dir="$("$root/images/build.sh" --binaries)"
version="$("$bin_dir/certraft-node" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
    "$stage/etc/default" "$stage/usr/share/doc/certraft/help"
install -m 0755 "$bin_dir/certraft-node" "$bin_dir/certraft" "$stage/usr/bin/"
strip "$stage/usr/bin/certraft-node" "$stage/usr/bin/certraft"
install -m 0644 "$here/certraft-node.service" "$stage/lib/systemd/system/"
install -m 0644 "$here/default" "$stage/etc/default/certraft-node"
install -m 0755 "$here/postinst" "$here/prerm" "$stage/DEBIAN/"
install -m 0644 "$root/README.md" "$stage/usr/share/doc/certraft/"
# The --help of every command, as the reference that ships with the package.
help() { "$stage/usr/bin/$1" "${@:2}" --help > "$stage/usr/share/doc/certraft/help/$(echo "$*" | tr ' ' '-').txt"; }
help certraft-node
for c in run health admin-token recover unseal-key-move; do help certraft-node "$c"; done
help certraft
for c in inspect cert cluster audit backup; do help certraft "$c"; done
for c in import list show export default rotate remove; do help certraft cert "$c"; done
echo "/etc/default/certraft-node" > "$stage/DEBIAN/conffiles"
size="$(du -sk "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: certraft
Version: $version
Architecture: $arch
Maintainer: certraft maintainers <maintainers@certraft.invalid>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://certraft.invalid
Description: HA TLS certificate appliance cluster
 certraft-node keeps one inventory of TLS certificate bundles replicated
 through Raft and serves the right certificate per SNI on every node; the
 certraft CLI imports, exports, rotates and audits them. The package installs
 a hardened systemd unit (certraft-node.service, DynamicUser, state in
 /var/lib/certraft, the unseal key as a credential from /etc/certraft).
CONTROL
mkdir -p "$out"
deb="$out/certraft_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
echo "$deb"
