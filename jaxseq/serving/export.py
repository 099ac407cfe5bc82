"""Exports a trained workdir as a translator that runs without the training code.

    jaxseq-export --workdir=workdir --out=translator/
    jaxseq-translate --artifact=translator/ "forty two"

The encoder and the batched beam search are serialised with `jax.export` (StableHLO):
one function per beam size and source width, each with a symbolic batch size, so any
batch runs without tracing the model again. The length penalty, the output limit and the
coverage penalty stay arguments (the manifest's "scalars" names them in order; an artifact
exported before the coverage penalty existed lacks it and takes none). With
--max_constraint_tokens=C (default 16; 0: none), each beam size and source width also gets
the lexically constrained search, its constraints stacked to C tokens
(`jaxseq/decoding/constraints.py`), for the batches that have constraints; the manifest
records C ("max_constraint_tokens"), and an artifact without it takes none. The
parameters go to params.npz (in the flattening order of their tree), the tokenizers are
copied, and manifest.json records the versions, the config, the shapes and a SHA-256 of
every file. `jaxseq/serving/artifact.py` loads it with jax, numpy and the tokenizer
library only. Mistakes (a missing or mismatched checkpoint, bad flags) are one line on
stderr and exit status 2; the output directory is written only when everything is ready.
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from typing import NamedTuple

import numpy as np

from jaxseq import cli, quiet
from jaxseq.data import tokenizers
from jaxseq.decoding import batching
from jaxseq.errors import CheckpointError
from jaxseq.serving.artifact import FORMAT, FORMAT_VERSION, MANIFEST, SCALARS, sha256

PARAMS = "params.npz"


DEFAULT_CONSTRAINT_TOKENS = 16


def function_file(beam_size: int, width: int, constraint_tokens: int = 0) -> str:
  cons = f"_cons{constraint_tokens}" if constraint_tokens else ""
  return f"beam{beam_size}_src{width}{cons}.jaxexport"


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = cli.OneLineParser(
    prog="jaxseq-export", description="Export a trained jaxseq workdir as a translator."
  )
  parser.add_model_flags()
  parser.add_argument("--out", required=True, help="new directory for the artifact")
  parser.add_beam_sizes_flag(
    "comma-separated beam sizes to export (default: 1 and config.decode.beam_size)"
  )
  parser.add_argument(
    "--platforms",
    default="",
    help="comma-separated: cpu, cuda, rocm, tpu (default: this machine's)",
  )
  parser.add_argument(
    "--max_constraint_tokens",
    type=int,
    default=DEFAULT_CONSTRAINT_TOKENS,
    help="constraint tokens a sentence may have with the exported constrained search "
    f"(default {DEFAULT_CONSTRAINT_TOKENS}; 0: export no constrained search)",
  )
  args = parser.parse_args(argv)
  parser.require_not_negative(args, "max_constraint_tokens")
  args.beam_sizes = parser.beam_sizes(args.beam_sizes)
  args.platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
  unknown = [p for p in args.platforms if p not in ("cpu", "cuda", "rocm", "tpu")]
  if unknown:
    parser.error(f"--platforms: {unknown[0]!r} is not allowed; expected cpu, cuda, rocm or tpu")
  if os.path.exists(args.out) and os.listdir(args.out):
    parser.error(f"--out {args.out!r} exists and is not empty; give a new directory")
  return args


class Shape(NamedTuple):
  """The static sizes of one exported search."""

  beam_size: int
  width: int  # source tokens
  max_length: int  # output positions
  constraint_tokens: int = 0  # 0: the search without constraints


def export_beam_search(model, params, shape: Shape, platforms: list[str]) -> bytes:
  """Serialised (leaves, src [b, width], alpha, ratio, offset, coverage_penalty) ->
  (tokens [b, k, max_length],
  lengths [b, k], scores [b, k], attention [b, k, max_length, width]), k = beam_size, b
  symbolic. With shape.constraint_tokens = C, the constrained search: the constraints'
  (tokens, phrase, position) [b, C] int32 each come after src."""
  # Imported here, as in run: JAX and the model code take 3.4 s to import.
  import jax

  from jaxseq.decoding import beam_search, constraints

  leaves, treedef = jax.tree.flatten(params)
  beam_size, width, max_length, size = shape

  def search(leaves, src, cons, alpha, ratio, offset, coverage):
    result = beam_search.batch_beam_search(
      model,
      jax.tree.unflatten(treedef, leaves),
      src,
      beam_search.Beam(beam_size, max_length, beam_size, alpha, ratio, offset, coverage),
      constraints=None if cons is None else constraints.Constraints(*cons),
    )
    return result.tokens, result.lengths, result.scores, result.attention

  (batch,) = jax.export.symbolic_shape("batch")
  leaf_specs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
  src_spec = jax.ShapeDtypeStruct((batch, width), np.int32)
  scalars = (
    jax.ShapeDtypeStruct((), np.float32),
    jax.ShapeDtypeStruct((), np.float32),
    jax.ShapeDtypeStruct((), np.int32),
    jax.ShapeDtypeStruct((), np.float32),
  )
  if size:
    cons_spec = jax.ShapeDtypeStruct((batch, size), np.int32)
    function = lambda leaves, src, tokens, phrase, position, *rest: search(
      leaves, src, (tokens, phrase, position), *rest
    )
    specs: tuple = (leaf_specs, src_spec, cons_spec, cons_spec, cons_spec, *scalars)
  else:
    function = lambda leaves, src, *rest: search(leaves, src, None, *rest)
    specs = (leaf_specs, src_spec, *scalars)
  exported = jax.export.export(jax.jit(function), platforms=platforms or None)(*specs)
  return bytes(exported.serialize())


def write_artifact(
  loaded, out: str, beam_sizes: list[int], platforms: list[str], constraint_tokens: int = 0
) -> dict:
  """Writes the artifact of a `trained.Trained` into out (made here), with the constrained
  searches of constraint_tokens tokens (0: none); returns the manifest."""
  import jax  # imported here, as in run: 1.6 s to import

  config, max_length = loaded.config, loaded.config.model.max_length
  beam_sizes = beam_sizes or sorted({1, int(config.decode.beam_size)})
  widths = batching.widths(max_length)
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    leaves = jax.tree.leaves(loaded.params)
    np.savez(os.path.join(staging, PARAMS), *[np.asarray(x) for x in leaves])
    for name in (tokenizers.SRC_FILE, tokenizers.TGT_FILE):
      shutil.copyfile(os.path.join(loaded.workdir, name), os.path.join(staging, name))
    functions: dict[str, dict[str, str]] = {}
    constrained: dict[str, dict[str, str]] = {}
    for beam_size in beam_sizes:
      for width in widths:
        for size, table in ((0, functions), (constraint_tokens, constrained)):
          if table is constrained and not size:
            continue
          name = function_file(beam_size, width, size)
          shape = Shape(beam_size, width, max_length, size)
          with open(os.path.join(staging, name), "wb") as f:
            f.write(export_beam_search(loaded.model, loaded.params, shape, platforms))
          table.setdefault(str(beam_size), {})[str(width)] = name
    files = sorted(os.listdir(staging))
    manifest = {
      "format": FORMAT,
      "format_version": FORMAT_VERSION,
      "versions": {
        "jax": jax.__version__,
        "jaxseq": importlib.metadata.version("jaxseq"),
        "sentencepiece": importlib.metadata.version("sentencepiece"),
      },
      "source": {"workdir": os.path.abspath(loaded.workdir), "step": loaded.step},
      "platforms": platforms or [jax.default_backend()],
      "max_length": max_length,
      "widths": widths,
      "beam_sizes": beam_sizes,
      "decode": config.decode.to_dict(),
      "scalars": list(SCALARS),
      "config": config.to_dict(),
      "tokenizers": {"source": tokenizers.SRC_FILE, "target": tokenizers.TGT_FILE},
      "params": PARAMS,
      "num_params": len(leaves),
      "functions": functions,
      "max_constraint_tokens": constraint_tokens,
      "constrained_functions": constrained,
      "sha256": {name: sha256(os.path.join(staging, name)) for name in files},
    }
    with open(os.path.join(staging, MANIFEST), "w") as f:
      json.dump(manifest, f, indent=2)
    if os.path.isdir(out):
      os.rmdir(out)  # empty (parse_args checked)
    os.rename(staging, out)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return manifest


def run(argv: list[str]) -> int:
  args = parse_args(argv)
  # Imported after parsing: with the model code (JAX, Flax, orbax) imported first, --help
  # and flag mistakes would take 3.8 s instead of 0.4 s.
  from jaxseq.decoding import trained

  try:
    with quiet.absl_errors_only():  # orbax's notes on read-only restores
      loaded = trained.load(args.workdir, command="jaxseq-export")
  except CheckpointError as e:
    return cli.fail(str(e))
  try:
    manifest = write_artifact(
      loaded, args.out, args.beam_sizes, args.platforms, args.max_constraint_tokens
    )
  except OSError as e:
    return cli.fail(f"--out {args.out!r} cannot be written: {e}")
  size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
  print(
    f"exported step {loaded.step} of {args.workdir} to {args.out}: beam sizes "
    f"{manifest['beam_sizes']}, source widths {manifest['widths']}, "
    f"constraint tokens {manifest['max_constraint_tokens']}, "
    f"{size / 2**20:.1f} MiB",
    file=sys.stderr,
  )
  return 0


def main() -> int:
  return run(sys.argv[1:])


if __name__ == "__main__":
  sys.exit(main())
