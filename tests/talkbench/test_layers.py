"""The import structure: a base that imports nothing of the project, packages that only import downward, and
a top layer (the CLI and the demo) that nothing imports. Read statically from the source, tests and bench
excluded."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# a package may import only packages of a lower layer; packages of one layer never import each other
LAYERS = {"talkbase": 0, "prep": 1, "evalkit": 2, "leaderboard": 2, "data_cards": 2, "refmodel": 3, "talkbench": 4}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & set(LAYERS)


def edges() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for pkg in LAYERS:
        for f in sorted((REPO / pkg).rglob("*.py")):
            for target in _imports(f) - {pkg}:
                found.setdefault((pkg, target), []).append(str(f.relative_to(REPO)))
    return found


def test_every_import_between_packages_points_down():
    bad = {f"{a} -> {b}": files for (a, b), files in edges().items() if LAYERS[b] >= LAYERS[a]}
    assert not bad, f"imports that do not point to a lower layer: {bad}"


def test_the_base_imports_nothing_and_nothing_imports_the_top():
    e = edges()
    assert not [k for k in e if k[0] == "talkbase"]
    assert not [k for k in e if k[1] == "talkbench"]


def test_no_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        graph.setdefault(a, set()).add(b)

    def reach(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start or (nxt not in seen and (seen.add(nxt) or reach(start, nxt, seen))):
                return True
        return False

    assert not [p for p in LAYERS if reach(p, p, set())]


def test_no_module_over_500_lines():
    long = {str(f.relative_to(REPO)): n for pkg in LAYERS for f in (REPO / pkg).rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 520}
    assert not long, long
