#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

For every crate under crates/, each module's `use crate::…` / `crate::…` / `super::…` paths
(outside `#[cfg(test)] mod tests`) give edges to the modules they name; a name that is not a
module is an item of the crate root, an edge to the root. The root has an edge to every module
it names. Any strongly connected component of more than one module is a circle.
"""
import os
import re
import sys


def modules(crate):
    src = os.path.join(crate, "src")
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3]
            if rel == "main":
                continue
            name = "crate" if rel == "lib" else rel.replace("/mod", "").replace("/", "::")
            with open(os.path.join(root, f)) as fh:
                mods[name] = re.split(r"#\[cfg\(test\)\]\s*mod tests", fh.read())[0]
    return mods


def graph(mods):
    g = {m: set() for m in mods}
    for m, text in mods.items():
        names = re.findall(r"crate::([A-Za-z_]+)", text)
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            names += [x.strip().split("::")[0].split(" ")[0] for x in group.split(",") if x.strip()]
        for n in names:
            if n in mods:
                g[m].add(n)
            elif m != "crate":
                g[m].add("crate")
        parent = m.rsplit("::", 1)[0] if "::" in m else "crate"
        for n in re.findall(r"super::([a-z_]+)", text):
            cand = n if parent == "crate" else f"{parent}::{n}"
            g[m].add(cand if cand in mods else parent)
        g[m].discard(m)
    root = mods.get("crate", "")
    for m in mods:
        if m != "crate" and "::" not in m and re.search(r"\b" + m + r"::", root):
            g["crate"].add(m)
    return g


def circles(g):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


found = False
for crate in sorted(os.listdir("crates")):
    for c in circles(graph(modules(os.path.join("crates", crate)))):
        found = True
        print(f"crates/{crate}: modules import each other in a circle: {' -> '.join(c)}")
if found:
    sys.exit(1)
print("module imports: no circles")
