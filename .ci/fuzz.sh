#!/usr/bin/env bash
# A bounded fuzz run of every target in node/fuzz (issue 18: the parsers of untrusted files
# must not panic): seeds from the real fixtures, FUZZ_SECONDS (default 60) per target. A
# crash fails the run; libFuzzer prints the input and cargo-fuzz the command to reproduce.
set -euo pipefail
cd "$(dirname "$0")/../node/fuzz"
seconds="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/parse_file corpus/keys
shopt -s nullglob
for f in ../tests/fixtures/*.{pem,der,p12,key,bin} ../tests/fixtures/tools/*.{pem,der,p12,p7b,p7c,key}; do
  cp "$f" corpus/parse_file/
done
for f in ../tests/fixtures/*.key.der ../tests/fixtures/*.sec1.der ../tests/fixtures/*.pkcs1.der; do
  cp "$f" corpus/keys/
done
cargo fuzz build -O
for target in parse_file keys open_sealed; do
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run -O "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | tail -n 12
done
