#!/bin/sh
# The MedForge image's entrypoint (under tini).
#   serve (the default): `medforge migrate`, then `medforge serve`.
#   firewall-keep: `medforge firewall apply`, then every
#     $MEDFORGE_FIREWALL__CHECK_INTERVAL_SECS (10) seconds `medforge firewall
#     check`, applying again when a rule is missing (Docker recreated a
#     network, someone flushed the ruleset). The compose `firewall` service.
#   anything else: `medforge <args>` (e.g. `user add --email ... --admin`).
set -eu

log() { echo "medforge-entrypoint: $*" >&2; }

case "${1:-serve}" in
  serve)
    # Refuse the placeholders of .env.example.
    case "${MEDFORGE_SECRET:-}" in
      *change-me*) log "MEDFORGE_SECRET is still the placeholder from .env.example: set it in .env"; exit 1 ;;
    esac
    case "${MEDFORGE_DATABASE_URL:-}" in
      *change-me*) log "MARIADB_PASSWORD is still the placeholder from .env.example: set it in .env"; exit 1 ;;
    esac
    medforge migrate
    exec medforge serve
    ;;
  firewall-keep)
    interval=${MEDFORGE_FIREWALL__CHECK_INTERVAL_SECS:-10}
    medforge firewall apply
    while sleep "$interval"; do
      if ! medforge firewall check >/dev/null 2>&1; then
        log "isolation rules changed: applying them again"
        medforge firewall apply || log "firewall apply failed; trying again in ${interval}s"
      fi
    done
    ;;
  *)
    exec medforge "$@"
    ;;
esac
