"""Measure the layering of lowdose from its actual imports.

Builds the graph of imports between subpackages (``lowdose.<sub>`` -> ``lowdose.<other>``, with
grimp, which import-linter installs) and prints: the cycles between subpackages, the imports that
point up the layers of ``[tool.importlinter]`` in pyproject.toml, and the longest chain of
subpackage-to-subpackage imports (its length counts subpackages, so ``cli -> core`` is 2).

Usage: ``.venv/bin/python scripts/import_floors.py`` (exit status 1 if a cycle or an upward
import exists).
"""

from __future__ import annotations

import functools
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def subpackage_graph(package: str = "lowdose") -> dict[str, set[str]]:
    """Edges ``a -> {b, ...}``: some module of subpackage ``a`` imports one of ``b``."""
    graph = grimp.build_graph(package, cache_dir=None)
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        parts = module.split(".")
        if len(parts) < 2:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            other = imported.split(".")
            if len(other) >= 2 and other[1] != parts[1]:
                edges.setdefault(parts[1], set()).add(other[1])
        edges.setdefault(parts[1], set())
    return edges


def layer_ranks() -> dict[str, int]:
    """Rank of each subpackage in the import-linter layers contract: 0 at the top."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    return {
        name.strip().split(".")[1]: rank
        for rank, line in enumerate(layers)
        for name in line.split("|")
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one subpackage (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def longest_chain(edges: dict[str, set[str]]) -> list[str]:
    """The longest path of subpackages along import edges (the graph must be acyclic)."""

    @functools.cache
    def from_node(node: str) -> tuple[str, ...]:
        tails = [from_node(nxt) for nxt in sorted(edges.get(node, ()))]
        return (node, *max(tails, key=len, default=()))

    return list(max((from_node(n) for n in sorted(edges)), key=len))


def main() -> int:
    edges = subpackage_graph()
    ranks = layer_ranks()
    loops = cycles(edges)
    upward = sorted(
        (a, b)
        for a, targets in edges.items()
        for b in targets
        if a in ranks and b in ranks and ranks[b] <= ranks[a]
    )
    print(f"subpackages: {len(edges)}, imports between them: {sum(map(len, edges.values()))}")
    print(f"cycles: {len(loops)}", *(" <-> ".join(c) for c in loops), sep="\n  ")
    lines = (f"{a} -> {b}" for a, b in upward)
    print(f"upward or sideways imports: {len(upward)}", *lines, sep="\n  ")
    if not loops:
        chain = longest_chain(edges)
        print(f"longest chain: {len(chain)} subpackages: {' -> '.join(chain)}")
    return 1 if loops or upward else 0


if __name__ == "__main__":
    sys.exit(main())
