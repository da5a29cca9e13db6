#!/usr/bin/env bash
# Installs what `make run` (`bootstrap.sh run`) and `make test` (`bootstrap.sh test`) need
# and is missing; does nothing when all is there. Needs only Rust (cargo) to begin with.
set -euo pipefail

mode="${1:-run}"

SECANTUS_CRATE=secantus-mdb
SECANTUS_VERSION=0.5.3-beta.196

say() { printf 'bootstrap: %s\n' "$*"; }

apt_install() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  if ! command -v apt-get >/dev/null; then
    say "$* missing and apt-get is not available: install $*, then run this again"
    exit 1
  fi
  say "installing $* with apt"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "$@" >/dev/null
}

command -v cargo >/dev/null || { say "cargo not found: install Rust from https://rustup.rs"; exit 1; }
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

have_secantus() {
  cargo install --list 2>/dev/null | grep -q "^${SECANTUS_CRATE} v${SECANTUS_VERSION}:" &&
    { command -v secantusd-rs >/dev/null || [ -x "$cargo_bin/secantusd-rs" ]; }
}

root="$(cd "$(dirname "$0")/.." && pwd)"
need_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
}

# The web client served at /: socket.io-client comes from npm through web/'s build. The same
# npm ci brings TypeScript, which `make lint` checks the client with (and installs if missing).
if [ ! -f "$root/web/public/vendor/socket.io.esm.min.js" ]; then
  need_node
  say "building the web client (npm ci in web/, then web/build.mjs)"
  npm ci --prefix "$root/web" --no-audit --no-fund
  node "$root/web/build.mjs"
fi

# Tests only: the official socket.io-client the whole-server tests drive Socket.IO with, and
# playwright-core for the browser tests.
test_js="$root/tests/js"
if [ "$mode" = test ] && { [ ! -d "$test_js/node_modules/socket.io-client" ] || [ ! -d "$test_js/node_modules/playwright-core" ]; }; then
  need_node
  say "installing the test drivers' npm packages into tests/js/node_modules"
  npm ci --prefix "$test_js" --no-audit --no-fund
fi

# Tests only: Debian's Chromium, driven headless by the browser tests.
if [ "$mode" = test ] && ! command -v chromium >/dev/null; then
  apt_install chromium fonts-dejavu-core
fi

# Tests only: coturn, for the relay-only call test.
if [ "$mode" = test ] && ! command -v turnserver >/dev/null; then
  apt_install coturn
fi

# Tests only: Redis, which the several-node tests share between their Huddle processes.
if [ "$mode" = test ] && ! command -v redis-server >/dev/null; then
  apt_install redis-server
fi

if have_secantus; then
  exit 0
fi

command -v cmake >/dev/null || apt_install cmake

say "installing ${SECANTUS_CRATE} ${SECANTUS_VERSION} (the embedded database; about 10 minutes, once)"
cargo install "${SECANTUS_CRATE}" --version "=${SECANTUS_VERSION}" --ignore-rust-version --locked
say "done"
