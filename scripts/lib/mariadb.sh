# MariaDB for the tests: installed, started and given a test user when
# missing. Exports MEDFORGE_TEST_MYSQL_URL. Source after common.sh.

MARIADB_TEST_USER=${MARIADB_TEST_USER:-medforge_test}
MARIADB_TEST_PASSWORD=${MARIADB_TEST_PASSWORD:-medforge_test}
MARIADB_PORT=${MARIADB_PORT:-3306}

ensure_mariadb() {
  ensure_packages mariadb mariadb-client /usr/sbin/mariadbd mariadb-server
  if ! mariadb -e 'SELECT 1' >/dev/null 2>&1; then
    log "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null 2>&1 || true
    setsid nohup mysqld_safe --user=mysql --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
      >/var/log/medforge-mariadb.log 2>&1 &
    wait_for "mariadb -e 'SELECT 1'" 60 || die "MariaDB did not start; see /var/log/medforge-mariadb.log"
  fi
  # The test user may create and drop the per-test databases mftest_* only.
  mariadb <<SQL || die "could not create the MariaDB test user"
CREATE USER IF NOT EXISTS '$MARIADB_TEST_USER'@'localhost' IDENTIFIED BY '$MARIADB_TEST_PASSWORD';
CREATE USER IF NOT EXISTS '$MARIADB_TEST_USER'@'127.0.0.1' IDENTIFIED BY '$MARIADB_TEST_PASSWORD';
GRANT ALL PRIVILEGES ON \`mftest\\_%\`.* TO '$MARIADB_TEST_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`mftest\\_%\`.* TO '$MARIADB_TEST_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
  # Leftovers of earlier runs (a failed case keeps its database).
  local db
  for db in $(mariadb -N -e "SHOW DATABASES LIKE 'mftest\\_%'"); do
    mariadb -e "DROP DATABASE \`$db\`" || true
  done
  export MEDFORGE_TEST_MYSQL_URL="mysql://$MARIADB_TEST_USER:$MARIADB_TEST_PASSWORD@127.0.0.1:$MARIADB_PORT/mftest"
}
