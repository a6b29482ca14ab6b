"""Reads wrk's --latency output: requests/s, p50 and p99 in ms, non-2xx/3xx
answers and socket errors. Used by the benchmark scripts."""
import re
import sys


def ms(value, text=""):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", value)
    if not m:
        sys.exit(f"unreadable wrk latency {value!r} in:\n{text}")
    n, unit = m.groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse(text):
    """(requests/s, p50 ms, p99 ms, non-2xx/3xx, socket errors)."""
    found = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not found:
        sys.exit(f"wrk gave no figures:\n{text}")
    rps = float(found.group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1), text)
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1), text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return (
        rps,
        p50,
        p99,
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )
