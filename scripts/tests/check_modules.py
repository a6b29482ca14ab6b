#!/usr/bin/env python3
"""Finds import cycles between the modules of each crate of the workspace.

A crate's modules are its files (`src/a/b.rs` and `src/a/b/mod.rs` are
module `a::b`). Module X depends on module Y when X's code names a path
into Y: `use crate::y::...`, `super::...`, `self::...`, or a path that
starts with a name X imported (`use crate::service; service::x::f()`).
A path resolves to the longest module it starts with, so `crate::api::Envelope`
is the module `api` itself (its mod.rs), and `crate::api::sessions::start`
is `api::sessions`. A file's `#[cfg(test)] mod tests { ... }` is left out:
unit tests look into the module they test.

Two modules that depend on each other, through any chain, form a cycle;
each strongly connected component of more than one module is reported.
A parent's mod.rs naming its child (to mount its routes, say) is an
ordinary dependency, so a child that reads items of its parent's mod.rs
is a cycle: shared items live in a sibling file instead. Only a parent's
re-export (`pub use child::X;`) is not counted: it is the module's public
face, not a use. Intra-doc links count (rustdoc resolves them); a path
a comment merely names does not.

Exit status 0 when no crate has a cycle. Usage:
    python3 scripts/tests/check_modules.py [--root DIR] [--show-edges]
"""

import argparse
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def crate_roots(root):
    """(crate name, src dir, root files) for every crate with a src/ dir."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git", "node_modules")]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            src = os.path.join(dirpath, "src")
            roots = [f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))]
            if roots:
                found.append((os.path.relpath(dirpath, root), src, roots))
    return sorted(found)


def module_of(src, path):
    """The module path (tuple) of a file under src/."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


# An intra-doc link's path: [`crate::x::Y`], [crate::x::Y], [text](crate::x::Y).
DOC_LINK = re.compile(r"(?:\[`?|\]\()((?:crate|super|self)(?:::" + IDENT + r")+)")


def strip(text):
    """The code with string and char literals emptied and comments removed,
    but for the links of doc comments (rustdoc resolves them: they are
    dependencies as much as code is). A path a doc comment only names in
    backticks is prose."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            if text.startswith(("///", "//!"), i):
                out.extend(f" {link} " for link in DOC_LINK.findall(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (raw := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + raw.group(1)
            j = text.find(close, i + raw.end())
            out.append('""')
            i = n if j < 0 else j + len(close)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:])):
            out.append("' '")
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_tests(text):
    """The code (see `strip`) without the unit test module."""
    text = strip(text)
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+tests\s*\{", text)
    return text[: cut.start()] if cut else text


def expand_use(tree):
    """`a::{b, c::{d as e}}` -> [('a::b', None), ('a::c::d', 'e')]."""
    tree = re.sub(r"\s*(::|[{},])\s*", r"\1", re.sub(r"\s+", " ", tree.strip()))
    out = []

    def walk(prefix, t):
        depth, parts, cur = 0, [], ""
        for ch in t:
            depth += (ch == "{") - (ch == "}")
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for part in filter(None, parts):
            if "{" in part:
                head, _, body = part.partition("{")
                walk(prefix + head, body[: body.rfind("}")])
            else:
                path, _, alias = part.partition(" as ")
                out.append((prefix + path.strip(), alias.strip() or None))

    walk("", tree)
    return out


def resolve(module, segments, modules):
    """The module a path names (its longest module prefix), or None when
    the path does not start at crate, self or super."""
    head, rest = segments[0], list(segments[1:])
    if head == "crate":
        base = ()
    elif head == "self":
        base = module
    elif head == "super":
        base = module[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    else:
        return None
    return longest(base, rest, modules)


def longest(base, rest, modules):
    best = base
    for i in range(len(rest)):
        candidate = base + tuple(rest[: i + 1])
        if candidate not in modules:
            break
        best = candidate
    return best


def edges_of(module, text, modules):
    deps = set()
    # Names a path may start with: this module's children, and what `use` imported.
    roots = {m[-1]: m for m in modules if len(m) == len(module) + 1 and m[: len(module)] == module}
    for m in re.finditer(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
        reexport = m.group(1) is not None
        for path, alias in expand_use(m.group(2)):
            segments = [s for s in path.split("::") if s and s != "*"]
            if not segments:
                continue
            if segments[0] in roots and segments[0] not in ("crate", "self", "super"):
                target = longest(roots[segments[0]], segments[1:], modules)
            else:
                target = resolve(module, segments, modules)
            if target is None:
                continue
            # A parent's `pub use child::X` is its public face, not a use.
            if not (reexport and target[: len(module)] == module):
                deps.add(target)
            if target and target[-1] == segments[-1]:
                roots[alias or segments[-1]] = target
    # The rest of the code, without the `use` items just read.
    text = re.sub(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", "", text)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::" + IDENT + r")+)", text):
        deps.add(resolve(module, m.group(1).split("::"), modules))
    for first, target in roots.items():
        for m in re.finditer(r"(?<![\w:])" + re.escape(first) + r"((?:::" + IDENT + r")+)", text):
            deps.add(longest(target, [s for s in m.group(1).split("::") if s], modules))
    deps.discard(module)
    deps.discard(None)
    return deps


def sccs(graph):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(module):
    return "::".join(module) or "crate"


def check_crate(src):
    files = []
    for dirpath, _, filenames in os.walk(src):
        for f in filenames:
            if f.endswith(".rs"):
                files.append(os.path.join(dirpath, f))
    modules = {module_of(src, f): f for f in files}
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as fh:
            graph[module] = edges_of(module, without_tests(fh.read()), modules)
    return graph, [c for c in sccs(graph) if len(c) > 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--show-edges", action="store_true")
    args = parser.parse_args()
    failed = False
    crates = crate_roots(os.path.abspath(args.root))
    if not crates:
        raise SystemExit("check_modules: no crate found")
    for crate, src, _ in crates:
        graph, cycles = check_crate(src)
        edges = sum(len(v) for v in graph.values())
        if args.show_edges:
            for module in sorted(graph):
                for dep in sorted(graph[module]):
                    print(f"{crate}: {name(module)} -> {name(dep)}")
        if cycles:
            failed = True
            for comp in cycles:
                members = set(comp)
                print(f"{crate}: import cycle between {len(comp)} modules: {', '.join(name(m) for m in comp)}")
                for m in comp:
                    inside = sorted(d for d in graph[m] if d in members)
                    print(f"    {name(m)} -> {', '.join(name(d) for d in inside)}")
        else:
            print(f"{crate}: {len(graph)} modules, {edges} dependencies, no import cycle")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
