"""No function of the decoding and serving modules takes more than six parameters: options
travel as one `DecodeOptions`, and the rest in small typed bundles."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = (
  "jaxseq/decoding/evaluation.py",
  "jaxseq/decoding/decode.py",
  "jaxseq/decoding/beam_search.py",
  "jaxseq/serving/translate.py",
  "jaxseq/serving/serve.py",
)
MOST = 6


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> int:
  """Parameters of a function, self (or cls) of a method left out; *args and **kwargs
  count one each."""
  args = node.args
  names = [*args.posonlyargs, *args.args]
  if in_class and names and names[0].arg in ("self", "cls"):
    names = names[1:]
  return len(names) + len(args.kwonlyargs) + bool(args.vararg) + bool(args.kwarg)


def functions(tree: ast.AST):
  """(name, node, whether it is a method) of every function, nested ones too."""
  methods = {
    id(item)
    for cls in ast.walk(tree)
    if isinstance(cls, ast.ClassDef)
    for item in cls.body
    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
  }
  for node in ast.walk(tree):
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
      yield node.name, node, id(node) in methods


def offenders(source: str) -> list[str]:
  tree = ast.parse(source)
  return [
    f"{name} ({count} parameters, line {node.lineno})"
    for name, node, method in functions(tree)
    if (count := parameter_count(node, method)) > MOST
  ]


def test_the_counter_counts_what_a_caller_passes():
  source = (
    "def f(a, b, /, c, *args, d, e=1, **kwargs): pass\n"
    "class C:\n"
    "  def m(self, a, b, c, d, e, f): pass\n"
    "  def n(self, a, b, c, d, e, f, g): pass\n"
    "def outer():\n"
    "  g = lambda: 0\n"
    "  def inner(a, b, c, d, e, f, g): pass\n"
  )
  found = offenders(source)
  assert [f.split()[0] for f in found] == ["f", "n", "inner"]
  assert found[0] == "f (7 parameters, line 1)"


def test_no_decoding_or_serving_function_takes_more_than_six_parameters():
  found = {
    path: bad for path in MODULES if (bad := offenders((ROOT / path).read_text(encoding="utf-8")))
  }
  assert not found, f"functions with more than {MOST} parameters: {found}"
