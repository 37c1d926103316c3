#!/usr/bin/env bash
# Installs what ld-eaas's demo or tests need and this machine lacks, saying
# what it will run before running it: apt-get on Debian/Ubuntu, brew on macOS.
# Elsewhere it prints what to install and stops.
#
#   scripts/setup.sh demo   PostgreSQL's server binaries (the demo starts a
#                           private, throwaway server from them)
#   scripts/setup.sh test   the same, plus pg_dump, Chromium and chromedriver
#
# scripts/demo and scripts/test source it; .ci/run runs it.
set -euo pipefail

# Mirrors ld_eaas::pgtemp::search_dirs: where initdb and postgres usually live.
pg_server_present() {
  local dir
  for dir in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin /opt/homebrew/opt/postgresql*/bin \
    /usr/local/opt/postgresql*/bin /opt/homebrew/bin /usr/local/bin /usr/local/pgsql/bin \
    /Applications/Postgres.app/Contents/Versions/latest/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

# Runs "$@" as root: directly when root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: need root to run: $*" >&2
    return 1
  fi
}

# ensure_installed demo|test
ensure_installed() {
  local what=$1 apt=() brew=() cask=() reasons=() url
  # A Postgres named explicitly needs no server binaries here.
  if [ "$what" = test ]; then url=${TEST_DATABASE_URL:-}; else url=${DATABASE_URL:-}; fi
  if [ -z "$url" ] && ! pg_server_present; then
    apt+=(postgresql)
    brew+=(postgresql)
    reasons+=("PostgreSQL's server binaries (initdb, postgres)")
  fi
  if [ "$what" = test ]; then
    # Two tests read the schema with pg_dump.
    if ! command -v pg_dump >/dev/null 2>&1 && [[ " ${apt[*]} " != *" postgresql "* ]]; then
      apt+=(postgresql-client)
      brew+=(libpq)
      reasons+=("pg_dump")
    fi
    if ! [ -x /usr/bin/chromium ] && ! command -v chromium >/dev/null 2>&1; then
      apt+=(chromium)
      cask+=(chromium)
      reasons+=("Chromium")
    fi
    # The browser tests inject axe-core, installed from npm by scripts/test.
    if ! command -v npm >/dev/null 2>&1; then
      apt+=(npm)
      brew+=(node)
      reasons+=("npm (for axe-core)")
    fi
    if ! command -v chromedriver >/dev/null 2>&1 && ! [ -x /usr/bin/chromedriver ]; then
      apt+=(chromium-driver)
      cask+=(chromedriver)
      reasons+=("chromedriver")
    fi
  fi
  if ! command -v cc >/dev/null 2>&1; then
    apt+=(build-essential)
    reasons+=("a C compiler (some dependencies build C code)")
  fi
  ((${#reasons[@]})) || return 0

  local missing="" reason
  for reason in "${reasons[@]}"; do missing+="${missing:+; }${reason}"; done
  echo "setup: this machine lacks: ${missing}."
  if [ "$(uname -s)" = Darwin ] && command -v brew >/dev/null 2>&1; then
    if ((${#brew[@]})); then
      echo "setup: running: brew install ${brew[*]}"
      brew install "${brew[@]}"
    fi
    if ((${#cask[@]})); then
      echo "setup: running: brew install --cask ${cask[*]}"
      brew install --cask "${cask[@]}"
    fi
  elif command -v apt-get >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo "
    echo "setup: running: ${sudo}apt-get update && ${sudo}apt-get install -y ${apt[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt[@]}"
  else
    echo "setup: install them with your package manager (Debian/Ubuntu: apt-get install -y ${apt[*]};" >&2
    echo "setup: macOS: brew install ${brew[*]}), then run this again." >&2
    return 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    demo | test) ensure_installed "$1" ;;
    *)
      echo "usage: scripts/setup.sh demo|test" >&2
      exit 2
      ;;
  esac
fi
