#!/usr/bin/env bash
# Installs what the test suite drives besides Rust: the MariaDB server (tests
# start private instances) and command-line
# client, MariaDB Connector/J with a JDK, PyMySQL and mysql-connector-python,
# moto's S3-compatible server and Azurite, Microsoft's Azure Storage emulator,
# with the Azure SDK for Python to seed it (tests start both on free loopback
# ports).
# Idempotent: each step is skipped when its tool is already present.
set -euo pipefail

need_apt=()
command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1 || need_apt+=(mariadb-client)
# The tests start private MariaDB servers of their own (never the machine's).
[ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ] || command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server)
[ -f /usr/share/java/mariadb-java-client.jar ] || need_apt+=(libmariadb-java)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 - <<'PY' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check PyMySQL mysql-connector-python "moto[server]" azure-storage-blob duckdb
import pymysql, mysql.connector, moto.server, boto3, azure.storage.blob, duckdb
PY

# Azurite from the npm registry, into a cache folder of its own.
azurite_dir="$HOME/.cache/lakewave/azurite"
if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
  command -v npm >/dev/null 2>&1 || { echo "the Azure tests need Node.js and npm to install Azurite" >&2; exit 1; }
  mkdir -p "$azurite_dir"
  npm install --prefix "$azurite_dir" --no-audit --no-fund --silent azurite@3
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
