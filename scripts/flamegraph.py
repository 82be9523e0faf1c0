#!/usr/bin/env python3
"""Folds `perf script` output into stacks and draws them as a flame graph (SVG).

    perf script -i perf.data | python3 scripts/flamegraph.py --title "keel leader" > leader.svg
    python3 scripts/flamegraph.py --folded out.folded < perf-script.txt > out.svg

A flame graph: every sampled call stack is one column of boxes, the root at the
bottom; columns with the same frames are merged, so a box's width is the share
of samples in which that function was on the stack, and the boxes above it are
what it called. Hover a box for its name, samples and share. Frames are
`function` from perf's symbolisation (DSO offsets where there is no symbol);
Rust's hashes (`::h0123...`) are dropped. Written for this project (no
dependency beyond Python 3).
"""
import argparse
import html
import re
import sys
import zlib
from collections import defaultdict

HASH = re.compile(r"::h[0-9a-f]{16}$")


def fold(lines):
    """perf script text -> {"root;...;leaf": samples}. A sample is a header
    line (command, pid, time, event) followed by one frame per line (address,
    symbol, dso), ended by a blank line."""
    stacks = defaultdict(int)
    frames = []
    comm = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                stacks[";".join([comm] + frames[::-1])] += 1
            frames, comm = [], None
            continue
        if not line[0].isspace():
            comm = line.split()[0]
            frames = []
            continue
        parts = line.strip().split(None, 1)
        sym = parts[1] if len(parts) > 1 else parts[0]
        sym = re.sub(r"\s+\(\S*\)$", "", sym)  # the trailing (dso)
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        sym = HASH.sub("", sym)
        if len(sym) > 160:  # long generic Rust names: keep the start, where the function is
            sym = sym[:157] + "..."
        if sym == "[unknown]" and len(parts) > 1:
            m = re.search(r"\(([^)]*)\)$", parts[1])
            sym = "[%s]" % m.group(1).rsplit("/", 1)[-1] if m else sym
        frames.append(sym)
    if comm is not None:
        stacks[";".join([comm] + frames[::-1])] += 1
    return stacks


def tree_of(stacks):
    root = {"name": "all", "n": 0, "kids": {}}
    for stack, n in stacks.items():
        root["n"] += n
        node = root
        for f in stack.split(";"):
            node = node["kids"].setdefault(f, {"name": f, "n": 0, "kids": {}})
            node["n"] += n
    return root


def colour(name):
    h = zlib.crc32(name.encode())
    return "rgb(%d,%d,%d)" % (205 + h % 50, 80 + (h >> 8) % 130, 30 + (h >> 16) % 40)


def svg(stacks, title, width=1200, row=16):
    root = tree_of(stacks)
    total = max(root["n"], 1)
    boxes = []
    depth_max = [0]

    def walk(node, x, depth):
        depth_max[0] = max(depth_max[0], depth)
        w = node["n"] / total * width
        if w >= 2.0:
            boxes.append((x, depth, w, node))
        cx = x
        for kid in sorted(node["kids"].values(), key=lambda k: k["name"]):
            walk(kid, cx, depth + 1)
            cx += kid["n"] / total * width

    walk(root, 0.0, 0)
    height = (depth_max[0] + 1) * row + 40
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="11">' % (width, height),
           '<rect width="100%%" height="100%%" fill="#fdfdf5"/><text x="6" y="16" font-size="14">%s (%d samples)</text>' % (html.escape(title), root["n"])]
    for x, depth, w, node in boxes:
        y = height - (depth + 1) * row - 4
        pct = 100.0 * node["n"] / total
        label = node["name"]
        chars = int(w / 7)
        text = label if len(label) <= chars else (label[:max(chars - 2, 0)] + ".." if chars > 3 else "")
        out.append('<g><title>%s: %d samples (%.2f%%)</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#fdfdf5" stroke-width="0.5"/>%s</g>' % (
            html.escape(label), node["n"], pct, x, y, w, row - 1, colour(label),
            '<text x="%.1f" y="%d">%s</text>' % (x + 2, y + row - 4, html.escape(text)) if text else ""))
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="perf script | flamegraph.py > out.svg")
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--folded", help="also write the folded stacks here")
    a = ap.parse_args()
    stacks = fold(sys.stdin)
    if a.folded:
        with open(a.folded, "w") as f:
            for s, n in sorted(stacks.items()):
                f.write("%s %d\n" % (s, n))
    sys.stdout.write(svg(stacks, a.title))


if __name__ == "__main__":
    main()
