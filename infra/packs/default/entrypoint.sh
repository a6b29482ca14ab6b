#!/bin/bash
# MedForge default pack: code-server on 0.0.0.0:8080 serving /workspace.
#
# The platform puts a session behind its own authenticating proxy, so
# code-server runs without a password (--auth none). MEDFORGE_EXPOSURE
# (set by the platform to "external" or "internal") decides whether files
# may be moved through the browser: an internal session may not download
# or upload files, nor serve other ports of the container through
# code-server's port proxy (/proxy/<port>/, which MedForge's proxy refuses
# on internal hosts too). Any other value, or none, is treated as internal
# (fail closed). Arguments given to the container are passed on to code-server,
# before the folder it opens.
set -euo pipefail

# Default user settings (workspace trust, welcome page, telemetry and
# update checks off), seeded when the user has none yet, so a home that
# is mounted from elsewhere gets them too.
user_dir="${HOME:-/home/coder}/.local/share/code-server/User"
if [ ! -e "$user_dir/settings.json" ]; then
  mkdir -p "$user_dir"
  cp /etc/medforge/code-server/settings.json "$user_dir/settings.json" 2>/dev/null || true
fi

flags=(
  --auth none
  --bind-addr 0.0.0.0:8080
  --disable-telemetry
  --disable-update-check
  --disable-workspace-trust
)
case "${MEDFORGE_EXPOSURE:-}" in
  external) ;;
  internal)
    flags+=(--disable-file-downloads --disable-file-uploads --disable-proxy)
    ;;
  *)
    echo "medforge-entrypoint: MEDFORGE_EXPOSURE='${MEDFORGE_EXPOSURE:-}' is neither external nor internal; running as internal" >&2
    flags+=(--disable-file-downloads --disable-file-uploads --disable-proxy)
    ;;
esac

exec /usr/local/bin/code-server "${flags[@]}" "$@" /workspace
