"""WebSocket-style round trips through a proxy: sends an upgrade request to
ADDR (host:port) with the given Host and Cookie, expects 101 (the test
pack's ws variant then echoes every byte), and times N echoes of a
32-byte message. Prints "p50_us p99_us".

Usage: ws_rtt.py ADDR HOST COOKIE N"""
import socket
import sys
import time

addr, host, cookie, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ip, port = addr.rsplit(":", 1)
s = socket.create_connection((ip, int(port)), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
cookie_line = f"Cookie: {cookie}\r\n" if cookie else ""
s.sendall(
    (
        f"GET /stable/socket HTTP/1.1\r\nHost: {host}\r\n{cookie_line}Upgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()
)
head = b""
while not head.endswith(b"\r\n\r\n"):
    b = s.recv(1)
    if not b:
        sys.exit(f"closed before the answer: {head!r}")
    head += b
if not head.startswith(b"HTTP/1.1 101"):
    sys.exit(f"no upgrade: {head!r}")
msg = b"x" * 32
times = []
for i in range(n + 100):
    t = time.perf_counter_ns()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(len(msg) - len(got))
        if not chunk:
            sys.exit("the tunnel closed")
        got += chunk
    if i >= 100:  # the first 100 warm up
        times.append(time.perf_counter_ns() - t)
times.sort()
print(f"{times[len(times) // 2] / 1000:.0f} {times[int(len(times) * 0.99)] / 1000:.0f}")
