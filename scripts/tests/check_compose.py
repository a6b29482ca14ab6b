#!/usr/bin/env python3
"""Checks MedForge's production compose file as Compose rendered it.

Usage: check_compose.py RENDERED.yml Dockerfile.caddy [--source docker-compose.yml --env .env.example]

RENDERED.yml is the output of `docker compose ... config` or of
docker-compose 1.29's `config` (both shapes are understood). With --source
and --env, also checks that .env.example defines, non-empty and with a
comment, every variable the compose file uses. Prints `ok ...` per check;
exits 1 with every failure listed.
"""

import argparse
import ipaddress
import json
import re
import sys

import yaml

SERVICES = {"medforge", "mariadb", "caddy", "firewall"}
CONTROL = "medforge-control"
EXTERNAL = "medforge-external-sessions"
INTERNAL = "medforge-internal-sessions"
SUBNETS = {EXTERNAL: "172.30.0.0/24", INTERNAL: "172.31.0.0/24"}
CADDY_ADDRS = {EXTERNAL: "172.30.0.2", INTERNAL: "172.31.0.2"}
MIN_CADDY = (2, 11)
DOCKER_SOCKET = "/var/run/docker.sock"
# Settings of .env.example that Compose itself reads, not the file.
COMPOSE_OWN_VARS = {"COMPOSE_PROJECT_NAME"}


class Checker:
    def __init__(self):
        self.failures = []

    def check(self, ok, what, why=""):
        if ok:
            print(f"ok {what}")
        else:
            self.failures.append(f"{what}{': ' + why if why else ''}")
            print(f"FAIL {what}{': ' + why if why else ''}")
        return ok


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def service_networks(service):
    nets = service.get("networks") or {}
    if isinstance(nets, list):
        return {n: {} for n in nets}
    return {n: (v or {}) for n, v in nets.items()}


def mounts_of(service):
    """(source, target, read_only) for every volume entry, either syntax."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) == 1:
                out.append((None, parts[0], False))
            else:
                out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            out.append((v.get("source"), v.get("target"), bool(v.get("read_only"))))
    return out


def published_ports(service):
    """(published, target, protocol) for every port entry, either syntax."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            pub = p.get("published")
            out.append((None if pub in (None, "") else int(pub), int(p["target"]), p.get("protocol") or "tcp"))
        else:
            spec, _, proto = str(p).partition("/")
            parts = spec.split(":")
            pub = int(parts[-2]) if len(parts) >= 2 else None
            out.append((pub, int(parts[-1]), proto or "tcp"))
    return out


def version_tuple(text):
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g or 0) for g in m.groups()) if m else None


def image_tag(image):
    """The tag of an image reference, or None (no tag means latest)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def figment_list(text):
    """A list as MedForge's config reads it from the environment."""
    text = (text or "").strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        return [str(x) for x in json.loads(text)]
    except ValueError:
        return [x.strip().strip('"') for x in text[1:-1].split(",") if x.strip()]


FROM_RE = r"^\s*FROM\s+(?:--\S+\s+)*(\S+)"


def caddy_froms(path):
    """The caddy image references of the Dockerfile's FROM lines."""
    try:
        text = open(path).read()
    except OSError:
        return []
    froms = re.findall(FROM_RE, text, re.M | re.I)
    return [f for f in froms if f.split("@")[0].rsplit("/", 1)[-1].split(":")[0] == "caddy"]


def check_caddy_dockerfile(c, path):
    try:
        text = open(path).read()
    except OSError as e:
        c.check(False, "Dockerfile.caddy readable", str(e))
        return
    froms = re.findall(FROM_RE, text, re.M | re.I)
    caddy = caddy_froms(path)
    c.check(bool(caddy), "Dockerfile.caddy builds FROM caddy images", f"FROM lines: {froms}")
    for ref in caddy:
        tag = image_tag(ref)
        v = version_tuple(tag)
        c.check(
            v is not None and v[:2] >= MIN_CADDY,
            f"Dockerfile.caddy FROM {ref} pins Caddy >= {MIN_CADDY[0]}.{MIN_CADDY[1]}",
            "no version tag (latest)" if v is None else f"version {tag}",
        )
    builds = re.findall(r"xcaddy\s+build\s+(\S+)", text)
    c.check(bool(builds), "Dockerfile.caddy runs xcaddy build with a version")
    for b in builds:
        v = version_tuple(b)
        c.check(v is not None and v[:2] >= MIN_CADDY, f"xcaddy build {b} is Caddy >= 2.11", f"version {b}")
    c.check(
        "github.com/caddy-dns/cloudflare" in text,
        "Dockerfile.caddy builds in the Cloudflare DNS module (the Caddyfile's `dns cloudflare`)",
    )


def check_env_example(c, source, env_example):
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", open(source).read()))
    defined, commented = {}, set()
    previous = ""
    for line in open(env_example).read().splitlines():
        s = line.strip()
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", s)
        if m:
            defined[m.group(1)] = m.group(2).strip().strip("'\"")
            if previous.startswith("#") or previous == "__commented__":
                commented.add(m.group(1))
                previous = "__commented__"
            else:
                previous = s
            continue
        previous = s
    missing = sorted(used - defined.keys())
    c.check(not missing, ".env.example defines every variable the compose file uses", f"missing {missing}")
    empty = sorted(k for k, v in defined.items() if not v)
    c.check(not empty, ".env.example gives every variable a value", f"empty {empty}")
    unused = sorted(defined.keys() - used - COMPOSE_OWN_VARS)
    c.check(not unused, ".env.example has no variable the compose file ignores", f"unused {unused}")
    bare = sorted(defined.keys() - commented)
    c.check(not bare, ".env.example comments every variable", f"no comment above {bare}")
    secret = defined.get("MEDFORGE_SECRET", "")
    c.check(len(secret) >= 32, ".env.example's MEDFORGE_SECRET placeholder is 32+ characters (as the server requires)")
    for k in ("MEDFORGE_SECRET", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD", "CLOUDFLARE_API_TOKEN"):
        if k in defined:
            c.check("change-me" in defined[k], f".env.example's {k} is a change-me placeholder", defined[k])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("dockerfile_caddy")
    ap.add_argument("--source")
    ap.add_argument("--env")
    args = ap.parse_args()

    c = Checker()
    doc = yaml.safe_load(open(args.rendered))
    services = doc.get("services") or {}
    networks = doc.get("networks") or {}

    c.check(set(services) == SERVICES, f"services are exactly {sorted(SERVICES)}", f"got {sorted(services)}")
    if not SERVICES <= set(services):
        return report(c)
    med, db, caddy, fw = (services[s] for s in ("medforge", "mariadb", "caddy", "firewall"))

    # Networks, by their engine-side name (what medforge's config names).
    by_name = {}
    for key, n in networks.items():
        n = n or {}
        by_name[n.get("name") or key] = (key, n)
    for name in (CONTROL, EXTERNAL, INTERNAL):
        c.check(name in by_name, f"network named {name}", f"names: {sorted(by_name)}")
    if not {CONTROL, EXTERNAL, INTERNAL} <= set(by_name):
        return report(c)
    key_of = {name: by_name[name][0] for name in by_name}
    c.check(by_name[INTERNAL][1].get("internal") is True, f"{INTERNAL} is internal (no egress)")
    c.check(not by_name[EXTERNAL][1].get("internal"), f"{EXTERNAL} is not internal")
    subnet, ip_range = {}, {}
    for name, want in SUBNETS.items():
        configs = ((by_name[name][1].get("ipam") or {}).get("config")) or []
        nets = [ipaddress.ip_network(x["subnet"]) for x in configs if x.get("subnet")]
        c.check(
            [str(n) for n in nets] == [want], f"{name} has subnet {want}", f"got {[str(n) for n in nets]}"
        )
        if nets:
            subnet[name] = nets[0]
            ranges = [ipaddress.ip_network(x["ip_range"]) for x in configs if x.get("ip_range")]
            ip_range[name] = ranges[0] if ranges else None

    def fixed_addresses(service_name, service):
        """Checks and returns the service's fixed address per sessions network."""
        nets = service_networks(service)
        found = {}
        for name in (EXTERNAL, INTERNAL):
            attach = nets.get(key_of[name])
            if not c.check(attach is not None, f"{service_name} is on {name}"):
                continue
            addr = (attach or {}).get("ipv4_address")
            if not c.check(bool(addr), f"{service_name} has a fixed ipv4_address on {name}"):
                continue
            ip = ipaddress.ip_address(addr)
            net = subnet.get(name)
            inside = net is not None and ip in net and ip not in (net.network_address, net.broadcast_address)
            gateway = net is not None and ip == net.network_address + 1
            c.check(inside and not gateway, f"{service_name}'s {addr} is a host address inside {name}'s {net}")
            if ip_range.get(name) is not None:
                c.check(
                    ip not in ip_range[name],
                    f"{service_name}'s {addr} is outside {name}'s dynamic ip_range {ip_range[name]}",
                )
            found[name] = str(ip)
        return found

    # Caddy.
    c.check(key_of[CONTROL] in service_networks(caddy), f"caddy is on {CONTROL}")
    caddy_addrs = fixed_addresses("caddy", caddy)
    for name, want in CADDY_ADDRS.items():
        c.check(caddy_addrs.get(name) == want, f"caddy's address on {name} is {want}", f"got {caddy_addrs.get(name)}")
    if caddy.get("build"):
        check_caddy_dockerfile(c, args.dockerfile_caddy)
        c.check(
            str((caddy["build"] or {}).get("dockerfile", "")).endswith("Dockerfile.caddy"),
            "caddy is built from Dockerfile.caddy",
        )
    image = caddy.get("image") or ""
    tag = image_tag(image) if image else None
    v = version_tuple(tag)
    c.check(
        bool(image) and v is not None and v[:2] >= MIN_CADDY,
        "caddy's image is tagged with its version, >= 2.11",
        f"image {image!r}",
    )
    if caddy.get("build"):
        df_versions = {version_tuple(image_tag(f)) for f in caddy_froms(args.dockerfile_caddy)}
        c.check(
            df_versions == {v}, "caddy's image tag matches Dockerfile.caddy's version", f"{tag} vs {df_versions}"
        )
    mounts = mounts_of(caddy)
    for f in ("Caddyfile", "session-route.caddy"):
        c.check(
            any(t == f"/etc/caddy/{f}" and ro and s and s.endswith(f"infra/caddy/{f}") for s, t, ro in mounts),
            f"caddy mounts infra/caddy/{f} read-only at /etc/caddy/{f}",
        )
    for target in ("/data", "/config"):
        c.check(any(t == target and s for s, t, _ in mounts), f"caddy keeps {target} in a volume")
    ports = published_ports(caddy)
    for port, proto in ((80, "tcp"), (443, "tcp"), (443, "udp")):
        c.check((port, port, proto) in ports, f"caddy publishes {port}/{proto}")
    cenv = env_of(caddy)
    for k in ("MEDFORGE_DOMAIN", "MEDFORGE_SESSIONS_DOMAIN", "MEDFORGE_SERVER", "CLOUDFLARE_API_TOKEN", "ACME_EMAIL"):
        c.check(bool(cenv.get(k)), f"caddy has {k}")

    # MariaDB.
    image = db.get("image") or ""
    tag = image_tag(image)
    c.check(
        image.split(":")[0].endswith("mariadb") and tag is not None and tag != "latest" and version_tuple(tag) is not None,
        "mariadb's image is pinned to a version",
        f"image {image!r}",
    )
    c.check(not db.get("ports"), "mariadb publishes no port", f"ports {db.get('ports')}")
    c.check(set(service_networks(db)) == {key_of[CONTROL]}, f"mariadb is on {CONTROL} only")
    c.check(any(t == "/var/lib/mysql" and s for s, t, _ in mounts_of(db)), "mariadb keeps /var/lib/mysql in a volume")
    c.check(bool((db.get("healthcheck") or {}).get("test")), "mariadb has a health check")

    # The server.
    env = env_of(med)
    expect = {"MEDFORGE_ROUTING": "caddy", "MEDFORGE_FIREWALL__KIND": "none", "MEDFORGE_COOKIE_SECURE": "true"}
    for k, want in expect.items():
        c.check(env.get(k) == want, f"medforge has {k}={want}", f"got {env.get(k)!r}")
    c.check((env.get("MEDFORGE_LISTEN") or "").startswith("0.0.0.0:"), "medforge listens on 0.0.0.0")
    c.check(
        (env.get("MEDFORGE_DATABASE_URL") or "").startswith(("mysql://", "mariadb://"))
        and "@mariadb:" in env.get("MEDFORGE_DATABASE_URL", ""),
        "medforge's database is the mariadb service",
    )
    c.check(len(env.get("MEDFORGE_SECRET") or "") >= 32, "medforge has a MEDFORGE_SECRET of 32+ characters")
    c.check(
        bool(env.get("MEDFORGE_BASE_DOMAIN")) and env.get("MEDFORGE_BASE_DOMAIN") == cenv.get("MEDFORGE_DOMAIN"),
        "medforge's MEDFORGE_BASE_DOMAIN is caddy's MEDFORGE_DOMAIN",
    )
    c.check(
        bool(env.get("MEDFORGE_SESSIONS_DOMAIN")) and env.get("MEDFORGE_SESSIONS_DOMAIN") == cenv.get("MEDFORGE_SESSIONS_DOMAIN"),
        "medforge's and caddy's MEDFORGE_SESSIONS_DOMAIN agree",
    )
    server = cenv.get("MEDFORGE_SERVER") or ""
    port = env.get("MEDFORGE_LISTEN", "").rsplit(":", 1)[-1]
    c.check(server == f"medforge:{port}", "caddy's MEDFORGE_SERVER is the medforge service's port", server)
    for k, name in (("MEDFORGE_RUNTIME__EXTERNAL_NETWORK", EXTERNAL), ("MEDFORGE_RUNTIME__INTERNAL_NETWORK", INTERNAL)):
        got = env.get(k)
        c.check(got in (None, name), f"medforge's {k} (if set) is {name}", f"got {got!r}")
    c.check(key_of[CONTROL] in service_networks(med), f"medforge is on {CONTROL}")
    med_addrs = fixed_addresses("medforge", med)
    mounts = mounts_of(med)
    c.check(any(t == DOCKER_SOCKET and s == DOCKER_SOCKET for s, t, _ in mounts), f"medforge mounts {DOCKER_SOCKET}")
    data_dir = env.get("MEDFORGE_DATA_DIR")
    c.check(bool(data_dir) and data_dir.startswith("/"), "medforge has an absolute MEDFORGE_DATA_DIR", repr(data_dir))
    c.check(
        any(s == data_dir and t == data_dir for s, t, _ in mounts),
        f"the data dir {data_dir} is mounted at the same path on the host and in medforge",
        f"mounts {mounts}",
    )
    deps = med.get("depends_on") or {}
    c.check(
        isinstance(deps, dict) and (deps.get("mariadb") or {}).get("condition") == "service_healthy",
        "medforge waits for mariadb to be healthy",
    )
    # Caddy names the client in X-Forwarded-For; the server believes it
    # from Caddy's fixed control-network address and nothing wider.
    caddy_control = (service_networks(caddy).get(key_of[CONTROL]) or {}).get("ipv4_address")
    trusted = figment_list(env.get("MEDFORGE_LIMITS__TRUSTED_PROXIES")) or []
    c.check(
        bool(caddy_control) and trusted == [f"{caddy_control}/32"],
        "medforge trusts X-Forwarded-For from caddy's fixed control address only",
        f"trusted {trusted}, caddy on {CONTROL} at {caddy_control}",
    )
    test = (med.get("healthcheck") or {}).get("test") or []
    c.check("/healthz" in " ".join(test if isinstance(test, list) else [test]), "medforge's health check asks /healthz")

    # The firewall service.
    fenv = env_of(fw)
    c.check(fw.get("network_mode") == "host", "firewall runs in the host's network namespace")
    c.check("NET_ADMIN" in (fw.get("cap_add") or []), "firewall has NET_ADMIN")
    c.check(fenv.get("MEDFORGE_FIREWALL__KIND") in ("nftables", "iptables"), "firewall's kind is nftables or iptables")
    c.check(fw.get("image") == med.get("image"), "firewall runs the medforge image")
    c.check(
        any(t == DOCKER_SOCKET and s == DOCKER_SOCKET for s, t, _ in mounts_of(fw)), f"firewall mounts {DOCKER_SOCKET}"
    )
    for k in ("MEDFORGE_RUNTIME__EXTERNAL_NETWORK", "MEDFORGE_RUNTIME__INTERNAL_NETWORK", "MEDFORGE_RUNTIME__KIND"):
        c.check(fenv.get(k) == env.get(k), f"firewall and medforge agree on {k}")
    proxy = figment_list(fenv.get("MEDFORGE_FIREWALL__PROXY_ADDRS"))
    c.check(proxy is not None, "firewall has MEDFORGE_FIREWALL__PROXY_ADDRS as a list", repr(fenv.get("MEDFORGE_FIREWALL__PROXY_ADDRS")))
    proxy = set(proxy or [])
    caddy_set = set(caddy_addrs.values())
    fixed = caddy_set | set(med_addrs.values())
    c.check(
        bool(caddy_set) and caddy_set <= proxy,
        "firewall.proxy_addrs holds caddy's fixed addresses",
        f"proxy_addrs {sorted(proxy)}, caddy {sorted(caddy_set)}",
    )
    c.check(
        proxy <= fixed,
        "firewall.proxy_addrs holds nothing but caddy's and medforge's fixed addresses",
        f"extra {sorted(proxy - fixed)}",
    )

    # Nothing rendered empty (an unset variable renders as "").
    empty = [
        f"{s}.{k}" for s, svc in services.items() for k, v in env_of(svc).items() if v is None or v == ""
    ]
    c.check(not empty, "no environment value is empty", f"empty {empty}")

    if args.source and args.env:
        check_env_example(c, args.source, args.env)
    return report(c)


def report(c):
    if c.failures:
        print(f"check_compose: {len(c.failures)} check(s) failed:", file=sys.stderr)
        for f in c.failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
