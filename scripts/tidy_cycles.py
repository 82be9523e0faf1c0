#!/usr/bin/env python3
"""Tidy check: no import cycles between the modules of a crate.

For every crate in the workspace, each source file is a module (`a/b.rs` and
`a/b/mod.rs` are `a::b`). A module depends on another when it names it through
`crate::...` or `super::...` (in a `use` or a path). A module and its own ancestors
or descendants are one unit here (a parent declares its children), so only
dependencies between unrelated modules count. Any strongly connected set of two or
more modules is reported, with one file:line per edge, and the check fails.

    python3 scripts/tidy_cycles.py [crate_dir ...]
"""
import os
import re
import sys

CRATES = ["engine", "wal", "net", "sim", "bench", "tuning"]
# Cycles known and being removed, each with the reason it still exists. A cycle not
# listed here fails the check; one listed that no longer exists fails it too, so the
# list cannot go stale.
KNOWN: dict = {
    # (crate, (module, ...)): why the cycle is accepted for now. Empty: there are none.
}
PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP_RE = re.compile(r"\b(crate|super)::\{([^}]*)\}")


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]) or rel[0] == "bin":
                rel = [] if rel[0] != "bin" else ["bin"] + rel[1:]
            mods[tuple(rel)] = os.path.join(root, f)
    return mods


def resolve(mods, here, kind, segs):
    base = [] if kind == "crate" else list(here[:-1]) if here else []
    parts = base + segs
    # The deepest existing module that the path names.
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in mods:
            return tuple(parts[:n])
    return None


def related(a, b):
    return a[: len(b)] == b or b[: len(a)] == a


REEXPORT_RE = re.compile(r"^\s*pub(?:\([a-z]+\))?\s+use\s+(?:self::)?([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)\s*;", re.M)
IDENT_RE = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def reexports(mods):
    """For each module, the names it re-exports from one of its children."""
    out = {}
    for mod, path in mods.items():
        text = open(path, encoding="utf-8").read()
        names = {}
        for m in REEXPORT_RE.finditer(text):
            child = mod + (m.group(1),)
            if child not in mods:
                continue
            for item in m.group(2).strip("{}").split(","):
                item = item.strip()
                if " as " in item:
                    item = item.split(" as ")[1].strip()
                if item and item not in ("self", "*"):
                    names[item.split("::")[-1]] = child
        out[mod] = names
    return out


def edges_of(mods):
    edges = {}
    reexp = reexports(mods)
    for mod, path in mods.items():
        text = open(path, encoding="utf-8").read()
        # Tests may reach anywhere; they are not part of the module graph.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        for ln, line in enumerate(text.splitlines(), 1):
            code = line.split("//")[0]
            targets = []
            for m in GROUP_RE.finditer(code):
                for item in m.group(2).split(","):
                    item = item.strip().split(" as ")[0]
                    if item and item != "self":
                        targets.append((m.group(1), item.split("::")))
            for m in PATH_RE.finditer(code):
                targets.append((m.group(1), m.group(2).strip(":").split("::")))
            for kind, segs in targets:
                segs = [s for s in segs if s]
                t = resolve(mods, mod, kind, segs)
                if t is None:
                    continue
                # A name an ancestor re-exports from another child is that child's.
                rest = segs[len(t) - (0 if kind == "crate" else len(mod) - 1):]
                if related(mod, t) and rest and rest[0] in reexp.get(t, {}):
                    t = reexp[t][rest[0]]
                if related(mod, t):
                    continue
                edges.setdefault((mod, t), f"{path}:{ln}")
        # `use super::*`: every name the parent re-exports from a child, used here.
        if mod and re.search(r"use\s+super::\*\s*;", text):
            parent = mod[:-1]
            names = reexp.get(parent, {})
            for ln, line in enumerate(text.splitlines(), 1):
                code = line.split("//")[0]
                for word in IDENT_RE.findall(code):
                    t = names.get(word)
                    if t and not related(mod, t):
                        edges.setdefault((mod, t), f"{path}:{ln}")
    return edges


def sccs(nodes, adj):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    crates = sys.argv[1:] or CRATES
    bad = 0
    seen_known = set()
    for crate in crates:
        src = os.path.join(root, crate, "src")
        mods = modules(src)
        edges = edges_of(mods)
        # Twice: between modules as they are, and between top-level modules with their
        # descendants folded in (a child of `server` using `zab` while a child of `zab`
        # uses `server` is a cycle between the two subsystems).
        top = {}
        for (a, b), where in edges.items():
            if a[:1] != b[:1] and a and b:
                top.setdefault((a[:1], b[:1]), where)
        reported = set()
        for graph in (edges, top):
            adj = {}
            for a, b in graph:
                adj.setdefault(a, []).append(b)
            nodes = sorted({m for e in graph for m in e})
            for comp in sccs(nodes, adj):
                if len(comp) < 2:
                    continue
                names = sorted("::".join(c) or "(root)" for c in comp)
                key = (crate, tuple(names))
                if key in reported:
                    continue
                reported.add(key)
                if key in KNOWN:
                    seen_known.add(key)
                    print(f"{crate}: known import cycle among {', '.join(names)}: {KNOWN[key]}")
                    continue
                bad += 1
                print(f"{crate}: import cycle among {', '.join(names)}")
                cs = set(comp)
                for (x, y), where in sorted(graph.items()):
                    if x in cs and y in cs:
                        rel = os.path.relpath(where, root)
                        print(f"    {'::'.join(x)} -> {'::'.join(y)}  ({rel})")
    for key in KNOWN:
        if key[0] in crates and key not in seen_known:
            bad += 1
            print(f"{key[0]}: the known cycle among {', '.join(key[1])} is gone: "
                  "remove it from KNOWN in scripts/tidy_cycles.py")
    if bad:
        sys.stdout.flush()
        print(f"{bad} import cycle(s); see scripts/tidy_cycles.py", file=sys.stderr)
        return 1
    print("no import cycles between modules (but those listed as known) in: " + ", ".join(crates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
