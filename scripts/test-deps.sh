#!/usr/bin/env bash
# Installs what the test suite drives besides Rust: the MariaDB server (tests
# start private instances) and command-line
# client, MariaDB Connector/J with a JDK, PyMySQL and mysql-connector-python,
# and moto's S3-compatible server (tests start it on a free loopback port).
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

python3 - <<'PY' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check PyMySQL mysql-connector-python "moto[server]"
import pymysql, mysql.connector, moto.server, boto3
PY
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
