# The browser end-to-end test's tools: Chromium and ChromeDriver from
# Debian (a test tool's own browser download does not work here), and
# axe-core, the accessibility checker the test runs in each page, fetched
# once from the npm registry into target/ (not vendored). Source after
# common.sh; exports MEDFORGE_TEST_CHROMEDRIVER and MEDFORGE_TEST_AXE.

AXE_VERSION=4.10.2

ensure_browser() {
  ensure_packages chromium chromium chromedriver chromium-driver
  MEDFORGE_TEST_CHROMEDRIVER=$(command -v chromedriver)
  export MEDFORGE_TEST_CHROMEDRIVER
}

ensure_axe() {
  local dir=target/axe-core-$AXE_VERSION
  if [ ! -s "$dir/axe.min.js" ]; then
    log "fetching axe-core $AXE_VERSION (npm registry)"
    rm -rf "$dir" && mkdir -p "$dir"
    curl -fsSL "https://registry.npmjs.org/axe-core/-/axe-core-$AXE_VERSION.tgz" \
      | tar -xz -C "$dir" --strip-components=1 package/axe.min.js \
      || die "could not fetch axe-core $AXE_VERSION from registry.npmjs.org"
  fi
  MEDFORGE_TEST_AXE=$(pwd)/$dir/axe.min.js
  export MEDFORGE_TEST_AXE
}
