#!/usr/bin/env bash
# Installs what `make run` and `make test` need and is missing; does nothing when all is
# there. Needs only Rust (cargo) to begin with.
set -euo pipefail

SECANTUS_CRATE=secantus-mdb
SECANTUS_VERSION=0.5.3-beta.196

say() { printf 'bootstrap: %s\n' "$*"; }

command -v cargo >/dev/null || { say "cargo not found: install Rust from https://rustup.rs"; exit 1; }
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

have_secantus() {
  cargo install --list 2>/dev/null | grep -q "^${SECANTUS_CRATE} v${SECANTUS_VERSION}:" &&
    { command -v secantusd-rs >/dev/null || [ -x "$cargo_bin/secantusd-rs" ]; }
}

if have_secantus; then
  exit 0
fi

if ! command -v cmake >/dev/null; then
  say "installing cmake (needed to build secantusd-rs)"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  if command -v apt-get >/dev/null; then
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq cmake >/dev/null
  else
    say "cmake is missing and apt-get is not available: install cmake, then run this again"
    exit 1
  fi
fi

say "installing ${SECANTUS_CRATE} ${SECANTUS_VERSION} (the embedded database; about 10 minutes, once)"
cargo install "${SECANTUS_CRATE}" --version "=${SECANTUS_VERSION}" --ignore-rust-version --locked
say "done"
