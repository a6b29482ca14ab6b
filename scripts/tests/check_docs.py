#!/usr/bin/env python3
"""Checks the documentation in docs/ against the code it describes.

- docs/cli.md: every command and subcommand that `medforge help` lists
  (recursively) has exactly one heading `medforge <command> [<subcommand>]`,
  no heading names a command the binary lacks, and every long option the
  help shows (but --help) is mentioned.
- docs/ui.md: every route of the UI router (medforge-server/src/ui/mod.rs)
  is named, as `/path` in backticks, in exactly one heading, and headings
  name no other path.
- docs/api.md: every (method, path) of the API, from the `#[utoipa::path]`
  attributes and the `.route(...)` calls in medforge-server/src/api/*.rs,
  is exactly one row `| METHOD | /path | purpose |` of its table, and the
  table has no other route.
- Config keys are explained only in medforge.example.toml: no docs/*.md
  line assigns a key (`key = ...`) or opens a config section (`[runtime]`),
  and no table lists three or more keys.
- Every relative link in docs/*.md and README.md points at a file or
  folder that exists, and a `#fragment` into a Markdown file at a heading
  it has.

Usage: check_docs.py [--root DIR] [--bin PATH] [--docs DIR]
  --root  the repository (default: two levels above this file)
  --bin   the medforge binary (default: ROOT/target/debug/medforge)
  --docs  where the docs to check are (default: ROOT/docs); links in them
          resolve as if they were in ROOT/docs, so a changed copy can be
          checked (the self-test in docs.sh does)
Exits 0 when all holds, 1 with one line per problem otherwise. Needs only
the Python 3 standard library.
"""

import argparse
import os
import re
import subprocess
import sys
from collections import Counter

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def check_once(problems, doc_name, expected, found, lines, missing, repeated, unknown):
    """Each of `expected` (in the order given) exactly once among what the
    doc names (`found`, a Counter; `lines`, where): the three callables word
    a missing one, a repeated one (key, count, lines) and one the code does
    not have (key, lines)."""
    for key in expected:
        n = found.get(key, 0)
        if n == 0:
            problems.add(doc_name, missing(key))
        elif n > 1:
            problems.add(doc_name, repeated(key, n, ", ".join(str(x) for x in lines[key])))
    for key in sorted(set(found) - set(expected)):
        problems.add(doc_name, unknown(key, ", ".join(str(x) for x in lines[key])))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None  # the opening fence's character and length
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        match = re.match(r"(`{3,}|~{3,})(.*)$", stripped)
        if fence is None and match:
            fence = (match.group(1)[0], len(match.group(1)))
            continue
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= fence[1] and not match.group(2):
                fence = None
            continue
        yield number, line


def headings(text):
    """(line number, level, text) of every ATX heading outside code blocks."""
    for number, line in prose_lines(text):
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            yield number, len(match.group(1)), match.group(2)


def slug(text):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    seen = Counter()
    found = set()
    for _, _, heading in headings(text):
        base = slug(heading)
        n = seen[base]
        seen[base] += 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


# --- the command line ------------------------------------------------------


def help_text(binary, path):
    try:
        out = subprocess.run(
            [binary, "help", *path],
            capture_output=True,
            text=True,
            timeout=30,
            env={k: v for k, v in os.environ.items() if not k.startswith("MEDFORGE_")},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SystemExit(f"check_docs: cannot run `{binary} help {' '.join(path)}`: {e}")
    if out.returncode != 0:
        raise SystemExit(
            f"check_docs: `{binary} help {' '.join(path)}` exited {out.returncode}: {out.stderr.strip()}"
        )
    return out.stdout


def help_section(text, title):
    """The entry lines of a clap help section (`Commands:`, `Options:`)."""
    lines = []
    inside = False
    for line in text.splitlines():
        if line.strip() == f"{title}:":
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            if not line.startswith(" "):
                break
            lines.append(line)
    return lines


def cli_tree(binary):
    """Every command path (tuples) below the top, and every long option."""
    commands = []
    options = set()

    def walk(path):
        text = help_text(binary, path)
        for line in help_section(text, "Options"):
            # `  -h, --help  Print help`: the names, not the description.
            names = re.split(r"\s{2,}", line.strip())[0]
            options.update(re.findall(r"--([a-z][a-z0-9-]*)", names))
        if len(path) >= 4:
            return
        for line in help_section(text, "Commands"):
            name = line.split()[0]
            if name == "help":
                continue
            commands.append((*path, name))
            walk([*path, name])

    walk([])
    options.discard("help")
    return commands, options


def check_cli(problems, binary, doc_path, doc_name):
    commands, options = cli_tree(binary)
    if not commands:
        problems.add(doc_name, f"`{binary} help` lists no commands: is it the medforge binary?")
        return 0
    text = read(doc_path)
    found = Counter()
    lines = {}
    for number, _, heading in headings(text):
        words = heading.replace("`", "").split()
        if len(words) < 2 or words[0] != "medforge":
            continue
        path = []
        for word in words[1:]:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                break  # an argument: <ID>, [OPTIONS], --flag
            path.append(word)
        if path:
            found[tuple(path)] += 1
            lines.setdefault(tuple(path), []).append(number)
    def name(command):
        return "medforge " + " ".join(command)

    check_once(
        problems, doc_name, commands, found, lines,
        lambda c: f"no heading for `{name(c)}` (`medforge help` lists it): add `### {name(c)}`",
        lambda c, n, where: f"{n} headings for `{name(c)}` (lines {where}); document each command once",
        lambda c, where: f"heading for `{name(c)}` (line {where}), which `medforge help` does not list",
    )
    for option in sorted(options):
        if not re.search(rf"(?<![\w-])--{re.escape(option)}(?![\w-])", text):
            problems.add(doc_name, f"option `--{option}` (in `medforge help`) is not mentioned")
    return len(commands)


# --- the web UI ------------------------------------------------------------


def ui_routes(root):
    text = read(os.path.join(root, "medforge-server/src/ui/mod.rs"))
    routes = re.findall(r'\.route\(\s*"([^"]+)"', text)
    if not routes:
        raise SystemExit("check_docs: found no .route(\"...\") in medforge-server/src/ui/mod.rs")
    return routes


def check_ui(problems, root, doc_path, doc_name):
    routes = ui_routes(root)
    text = read(doc_path)
    found = Counter()
    lines = {}
    for number, _, heading in headings(text):
        for path in re.findall(r"`(/[^`\s]*)`", heading):
            found[path] += 1
            lines.setdefault(path, []).append(number)
    check_once(
        problems, doc_name, routes, found, lines,
        lambda r: f"UI route `{r}` (medforge-server/src/ui/mod.rs) is in no heading",
        lambda r, n, where: f"UI route `{r}` is in {n} headings (lines {where}); document it once",
        lambda r, where: f"heading names `{r}` (line {where}), which the UI router does not have",
    )
    return len(routes)


# --- the API ---------------------------------------------------------------


def call_arguments(text, start):
    """The text between the parenthesis at `start` and its match."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return text[start + 1 :]


def api_routes(problems, root):
    """{(METHOD, path)} from utoipa attributes and router calls, checked against each other."""
    folder = os.path.join(root, "medforge-server/src/api")
    documented = set()
    routed = set()
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".rs"):
            continue
        text = read(os.path.join(folder, name))
        for method, path in re.findall(
            r"#\[utoipa::path\(\s*(get|post|put|patch|delete)\s*,\s*path\s*=\s*\"([^\"]+)\"", text
        ):
            documented.add((method.upper(), path))
        constants = dict(re.findall(r'const\s+([A-Z_][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([^"]*)"', text))
        for match in re.finditer(r"\.route\(", text):
            args = call_arguments(text, match.end() - 1)
            first, _, rest = args.partition(",")
            first = first.strip()
            if first.startswith('"'):
                path = first.strip('"')
            elif first in constants:
                path = constants[first]
            else:
                problems.add(
                    f"medforge-server/src/api/{name}",
                    f"cannot read the path of `.route({first}, ...)` (check_docs.py resolves string literals and "
                    "`const NAME: &str` in the same file)",
                )
                continue
            for method in re.findall(r"\b(get|post|put|patch|delete)\s*\(", rest):
                routed.add((method.upper(), path))
    for method, path in sorted(documented - routed):
        problems.add("medforge-server/src/api", f"`#[utoipa::path({method.lower()}, path = \"{path}\")]` has no route")
    return documented | routed


def check_api(problems, root, doc_path, doc_name):
    routes = api_routes(problems, root)
    text = read(doc_path)
    found = Counter()
    lines = {}
    for number, line in prose_lines(text):
        if not line.lstrip().startswith("|"):
            continue
        cells = [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0].upper() not in METHODS or not cells[1].startswith("/"):
            continue
        pair = (cells[0].upper(), cells[1])
        found[pair] += 1
        lines.setdefault(pair, []).append(number)
    if "/api/v2/openapi.json" not in text:
        problems.add(doc_name, "does not name the live document, /api/v2/openapi.json")
    check_once(
        problems, doc_name, sorted(routes), found, lines,
        lambda p: f"`{p[0]} {p[1]}` is not a row of the route table",
        lambda p, n, where: f"`{p[0]} {p[1]}` is in {n} rows (lines {where}); list each route once",
        lambda p, where: f"row `{p[0]} {p[1]}` (line {where}) is not a route of the server",
    )
    return len(routes)


# --- config keys -----------------------------------------------------------


def config_keys(root):
    """(leaf names, full names, sections) documented in medforge.example.toml."""
    leaves, full, sections = set(), set(), set()
    section = None
    for line in read(os.path.join(root, "medforge.example.toml")).splitlines():
        match = re.match(r"^\s*\[([a-z_][a-z0-9_.]*)\]\s*$", line)
        if match:
            section = match.group(1)
            sections.add(section)
            continue
        match = re.match(r"^\s*(?:#\s?)?([a-z_][a-z0-9_]*)\s*=(?!=)", line)
        if match:
            key = match.group(1)
            leaves.add(key)
            full.add(f"{section}.{key}" if section else key)
    if not leaves:
        raise SystemExit("check_docs: found no keys in medforge.example.toml")
    return leaves, full, sections


def check_config_keys(problems, root, doc_files):
    leaves, full, sections = config_keys(root)
    for doc_name, path in doc_files:
        text = read(path)
        table_hits = []
        for number, line in enumerate(text.splitlines(), 1):
            match = re.match(r"^\s*(?:#\s*)?([a-z_][a-z0-9_]*)\s*=(?!=)", line)
            if match and match.group(1) in leaves:
                problems.add(
                    doc_name,
                    f"line {number} sets config key `{match.group(1)}`: keys are explained in "
                    "medforge.example.toml only; link to it",
                )
            match = re.match(r"^\s*\[([a-z_][a-z0-9_.]*)\]\s*$", line)
            if match and match.group(1) in sections:
                problems.add(
                    doc_name,
                    f"line {number} opens config section `[{match.group(1)}]`: link to medforge.example.toml instead",
                )
            if line.lstrip().startswith("|"):
                first = line.strip().strip("|").split("|")[0].strip().strip("`").strip()
                if first in full:
                    table_hits.append(number)
            elif table_hits:
                report_key_table(problems, doc_name, table_hits)
                table_hits = []
        report_key_table(problems, doc_name, table_hits)


def report_key_table(problems, doc_name, hits):
    if len(hits) >= 3:
        problems.add(
            doc_name,
            f"the table at lines {hits[0]}-{hits[-1]} lists config keys: keys are explained in "
            "medforge.example.toml only; link to it",
        )


# --- links -----------------------------------------------------------------


def check_links(problems, root, docs_dir, doc_files):
    """doc_files: (shown name, path to read, the folder links resolve from)."""
    real_docs = os.path.join(root, "docs")
    count = 0
    for doc_name, path, base in doc_files:
        text = read(path)
        for number, line in prose_lines(text):
            line = re.sub(r"`[^`]*`", "", line)
            targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)
            targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", line)
            for target in targets:
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                    continue  # http:, https:, mailto:
                count += 1
                file_part, _, fragment = target.partition("#")
                if file_part:
                    resolved = os.path.normpath(os.path.join(base, file_part))
                else:
                    resolved = os.path.normpath(os.path.join(base, os.path.basename(path)))
                if not os.path.exists(resolved):
                    problems.add(doc_name, f"line {number}: link `{target}` points at nothing ({os.path.relpath(resolved, root)})")
                    continue
                if fragment and resolved.endswith(".md") and os.path.isfile(resolved):
                    # A doc under check is read from its (possibly changed) copy.
                    readable = resolved
                    if os.path.dirname(resolved) == real_docs and docs_dir != real_docs:
                        copy = os.path.join(docs_dir, os.path.basename(resolved))
                        if os.path.exists(copy):
                            readable = copy
                    if fragment not in anchors(read(readable)):
                        problems.add(
                            doc_name,
                            f"line {number}: link `{target}`: {os.path.relpath(resolved, root)} has no heading "
                            f"with the anchor #{fragment}",
                        )
    return count


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Check docs/ against the code.")
    parser.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")))
    parser.add_argument("--bin", default=None)
    parser.add_argument("--docs", default=None)
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    binary = os.path.abspath(args.bin) if args.bin else os.path.join(root, "target/debug/medforge")
    docs_dir = os.path.abspath(args.docs) if args.docs else os.path.join(root, "docs")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"check_docs: {binary} is not an executable (cargo build -p medforge-server first)")

    problems = Problems()
    shown = lambda name: f"docs/{name}"  # noqa: E731
    for name in ("cli.md", "ui.md", "api.md"):
        if not os.path.isfile(os.path.join(docs_dir, name)):
            problems.add(shown(name), "missing")
    if problems.items:
        report(problems)
    commands = check_cli(problems, binary, os.path.join(docs_dir, "cli.md"), shown("cli.md"))
    pages = check_ui(problems, root, os.path.join(docs_dir, "ui.md"), shown("ui.md"))
    routes = check_api(problems, root, os.path.join(docs_dir, "api.md"), shown("api.md"))
    markdown = sorted(n for n in os.listdir(docs_dir) if n.endswith(".md"))
    check_config_keys(problems, root, [(shown(n), os.path.join(docs_dir, n)) for n in markdown])
    link_files = [(shown(n), os.path.join(docs_dir, n), os.path.join(root, "docs")) for n in markdown]
    link_files.append(("README.md", os.path.join(root, "README.md"), root))
    links = check_links(problems, root, docs_dir, link_files)
    if problems.items:
        report(problems)
    print(
        f"docs: ok: {commands} CLI commands, {pages} UI routes, {routes} API routes, "
        f"{links} relative links, no second config reference"
    )


def report(problems):
    for item in problems.items:
        print(f"docs: {item}", file=sys.stderr)
    print(f"docs: {len(problems.items)} problem(s)", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
