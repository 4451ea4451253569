#!/usr/bin/env bash
# Runs every Keybridge test, installing what the tests need first.
# This is the README's test command, and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: josekit links the system OpenSSL; upstream tests run Node.js programs.
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Tests start their own throwaway PostgreSQL clusters from the server binaries.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# Real upstreams (npm oidc-provider, the Firebase Auth Emulator), pinned by lockfiles.
# `npm ci` runs again only when a lockfile changed (a stamp in node_modules remembers it).
for dir in tests/upstreams/*/; do
  if [ -f "$dir/package-lock.json" ]; then
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$dir/node_modules/.keybridge-lock" 2>/dev/null)" != "$sum" ]; then
      echo "== npm ci in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
      echo "$sum" > "$dir/node_modules/.keybridge-lock"
    fi
  fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== the browser and token flows again, on PostgreSQL"
KEYBRIDGE_TEST_STORAGE=postgres cargo test --locked -p keybridge-it --test it -- \
  authorize:: login:: token:: refresh:: userinfo:: gpt:: oidc_rp:: malformed:: upstream:: discovery::
