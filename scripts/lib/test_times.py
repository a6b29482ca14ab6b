"""Passes `cargo test` output through and times each test binary.

cargo prints `Running <target> (<path>)` before each test binary and
`Doc-tests <crate>` before each crate's doctests; a binary's time is from
its line to the next one (the build before the first is "cargo test:
build"). The rows go to the stage table of scripts/lib/stages.sh
(argv[1], tab-separated: name, seconds, outcome). Usage:
cargo test ... 2>&1 | python3 scripts/lib/test_times.py FILE
"""

import re
import sys
import time

START = re.compile(r"^\s+(Running|Doc-tests) (.+?)\s*$")
DEPS_NAME = re.compile(r"\(.*/deps/(.+)-[0-9a-f]+\)$")


def label(kind, what):
    if kind == "Doc-tests":
        return f"cargo test: doctests {what}"
    target, _, path = what.partition(" (")
    name = DEPS_NAME.search(what)
    crate = name.group(1) if name else ""
    return f"cargo test: {target} [{crate}]" if crate else f"cargo test: {target}"


def main():
    table = open(sys.argv[1], "a", encoding="utf-8")
    current, since, failed = "cargo test: build", time.monotonic(), False

    def close(outcome):
        table.write(f"{current}\t{int(time.monotonic() - since)}\t{outcome}\n")
        table.flush()

    for line in sys.stdin:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("test result: FAILED") or "error: test failed" in line:
            failed = True
        found = START.match(line)
        if found:
            close("FAILED" if failed else "ok")
            current, since, failed = label(found.group(1), found.group(2)), time.monotonic(), False
    close("FAILED" if failed else "ok")


if __name__ == "__main__":
    main()
