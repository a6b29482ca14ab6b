"""The slow-clients benchmark's load: a normal user's sign-in and a request
proxied to their session, timed alone (the baseline), then while 1,000
connections dribble their headers (a byte a second, never finishing), then
the same with 200 wrong-password sign-ins running at once. Prints a
markdown table. Run by scripts/lib/slow-clients-bench.sh.

Usage: slow_clients.py PORT SESSION_HOST PASS EMAIL PASSWORD SERVER_PID HEADER_TIMEOUT_S
"""
import asyncio
import json
import random
import statistics
import sys
import time

PORT, HOST, PASS, EMAIL, PASSWORD = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
PID, TIMEOUT = int(sys.argv[6]), float(sys.argv[7])
SLOW = 1000
BAD_LOGINS = 200
# The slow connections come from two loopback addresses of their own (the
# per-network cap is 512): the normal user, from 127.0.0.1, is another
# client, as on a real network.
SLOW_SOURCES = ["127.0.0.2", "127.0.0.3"]


async def request(raw, source="127.0.0.1"):
    """Sends one request (Connection: close) and returns (seconds, status)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", int(PORT), local_addr=(source, 0))
    writer.write(raw)
    await writer.drain()
    head = await reader.readline()
    await reader.read()
    writer.close()
    status = int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return time.monotonic() - start, status


def login_request(email, password):
    body = json.dumps({"email": email, "password": password}).encode()
    return (
        b"POST /api/v2/auth/login HTTP/1.1\r\nHost: medforge.localhost\r\nContent-Type: application/json\r\n"
        + b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


PROXIED = (
    f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nCookie: {PASS}\r\nConnection: close\r\n\r\n".encode()
)


async def measure():
    """(sign-in seconds, proxied GET seconds): 10 sign-ins, 40 GETs, one at a time."""
    logins, gets = [], []
    for _ in range(10):
        t, status = await request(login_request(EMAIL, PASSWORD))
        assert status == 200, f"the user's sign-in answered {status}"
        logins.append(t)
    for _ in range(40):
        t, status = await request(PROXIED)
        assert status == 200, f"the proxied request answered {status}"
        gets.append(t)
    return logins, gets


async def slow_client(source, stop, lifetimes):
    """Dribbles headers, a byte a second; when the server closes the
    connection, records how long it lived and connects again, until `stop`."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", int(PORT), local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.1)
            continue
        start = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: medforge.localhost\r\nX-Dribble: ")
        closed_by_server = False
        while not stop.is_set():
            try:
                got = await asyncio.wait_for(reader.read(1024), 1.0)
                if not got:
                    closed_by_server = True
                    break
            except asyncio.TimeoutError:
                pass
            except OSError:
                closed_by_server = True
                break
            try:
                writer.write(b"a")
                await writer.drain()
            except OSError:
                closed_by_server = True
                break
        if closed_by_server:
            lifetimes.append(time.monotonic() - start)
        writer.close()


async def bad_logins(stop, answered):
    while not stop.is_set():
        email = f"nobody-{random.getrandbits(48):x}@example.org"
        _, status = await request(login_request(email, "wrong passphrase"), source="127.0.0.4")
        answered.append(status)


def rss_mib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def sample_rss(stop, peak):
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib())
        await asyncio.sleep(0.2)


async def phase(with_bad_logins):
    """1,000 slow clients (each reconnecting when closed) and the bad
    sign-ins, for at least two header timeouts, with the user measured
    in the middle."""
    lifetimes, answered, peak = [], [], [0.0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(stop, peak))
    slow = [asyncio.create_task(slow_client(SLOW_SOURCES[i % 2], stop, lifetimes)) for i in range(SLOW)]
    bad = [asyncio.create_task(bad_logins(stop, answered)) for _ in range(BAD_LOGINS if with_bad_logins else 0)]
    started = time.monotonic()
    await asyncio.sleep(2)
    logins, gets = await measure()
    # Long enough for every first connection to meet the header timeout.
    await asyncio.sleep(max(0.0, 2 * TIMEOUT + 2 - (time.monotonic() - started)))
    stop.set()
    await asyncio.gather(*slow, *bad, sampler)
    return logins, gets, peak[0], lifetimes, answered


def ms(values, q):
    values = sorted(values)
    if q == "p50":
        return statistics.median(values) * 1000
    return values[-1] * 1000


async def main():
    base_logins, base_gets = await measure()
    # After the baseline's own sign-ins: what hashing passwords costs is in it.
    idle_rss = rss_mib()
    slow = await phase(False)
    both = await phase(True)
    rows = [("alone (baseline)", base_logins, base_gets, idle_rss, None, None)]
    rows.append(("1,000 slow connections held", slow[0], slow[1], slow[2], slow[3], None))
    rows.append(("… and 200 wrong-password sign-ins at once", both[0], both[1], both[2], both[3], both[4]))
    print("| while | sign-in p50 ms | ÷ baseline | sign-in max ms | proxied GET p50 ms | ÷ baseline | proxied GET max ms | server RSS MiB (after / peak) | slow connections the server closed | their lifetime p50 / max s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    bl, bg = ms(base_logins, "p50"), ms(base_gets, "p50")
    for name, logins, gets, rss, closed, _ in rows:
        l50, g50 = ms(logins, "p50"), ms(gets, "p50")
        if closed is None:
            slow_cells = "–", "–"
        else:
            spans = f"{statistics.median(closed):.1f} / {max(closed):.1f}" if closed else "–"
            slow_cells = str(len(closed)), spans
        print(
            f"| {name} | {l50:.0f} | {l50 / bl:.2f} | {ms(logins, 'max'):.0f} | {g50:.1f} | {g50 / bg:.2f} "
            f"| {ms(gets, 'max'):.1f} | {rss:.1f} | {slow_cells[0]} | {slow_cells[1]} |"
        )
    answered = both[4]
    refused = sum(1 for s in answered if s == 401)
    print()
    print(
        f"The wrong-password sign-ins: {len(answered)} answered while they ran ({refused} with 401), each "
        f"hashing a password (unknown addresses, so no account lock cuts them short), through the "
        f"one-hash-per-core queue; the user's own sign-in waits in that queue, the proxied request does not."
    )
    print(f"Header timeout: {TIMEOUT:.0f} s (the default `http.header_read_timeout`).")


asyncio.run(main())
