"""The package's own import graph has no cycle (function-level imports included)."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxseq"


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
  path = PACKAGE.parent.joinpath(*name.split("."))
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: pathlib.Path) -> set[str]:
  """jaxseq modules that a file imports anywhere in it. `from pkg import sub` counts as
  importing pkg.sub when that is a module (a package's own __init__ is not an edge)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.startswith("jaxseq")}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxseq"):
      subs = {f"{node.module}.{a.name}" for a in node.names}
      found |= {s for s in subs if is_module(s)} or {node.module}
  return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
  return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
  """One import cycle as [a, b, ..., a], or None."""
  state = {}  # module -> "open" while on the DFS path, "done" after

  def visit(node, path):
    state[node] = "open"
    for target in sorted(edges.get(node, ())):
      if state.get(target) == "open":
        return path[path.index(target) :] + [target]
      if target not in state and (cycle := visit(target, path + [target])):
        return cycle
    state[node] = "done"
    return None

  for start in sorted(edges):
    if start not in state and (cycle := visit(start, [start])):
      return cycle
  return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
  edges = graph()
  assert (
    "jaxseq.model.seq2seq" in edges and "jaxseq.model.attention" in edges["jaxseq.model.seq2seq"]
  )
  assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))
