"""Loads a translator written by `jaxseq-export`, with jax, numpy and the tokenizer library.

Nothing here imports Flax or jaxseq's model code: the searches are the serialised
`jax.export` functions, called with the saved parameters. Every file is checked against
the manifest's SHA-256 before use, so a tampered or incomplete artifact is refused with
an `ArtifactError` naming the file. `Artifact.translate_ids` has the signature of
`trained.Loaded.translate_ids` (both are a `translate.Backend`), so `jaxseq-translate
--artifact` and `jaxseq-serve --artifact` use it in place of a workdir. An artifact
exported with constraints ("max_constraint_tokens" in its manifest) translates sentences
with up to that many constraint tokens; one exported before constraints existed has no
such field and takes none.
"""

import hashlib
import json
import os

import numpy as np

from jaxseq.data import tokenizers
from jaxseq.decoding import batching
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.errors import ArtifactError

FORMAT, FORMAT_VERSION = "jaxseq-artifact", 1
MANIFEST = "manifest.json"
# The options an exported search takes after its sources (and constraints), in order; an
# artifact without "scalars" in its manifest was exported before the coverage penalty and
# takes the first three.
SCALARS = ("alpha", "max_length_ratio", "max_length_offset", "coverage_penalty")
OLD_SCALARS = SCALARS[:3]


def sha256(path: str) -> str:
  """The hex SHA-256 of a file's bytes, as the manifest records it."""
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _read_manifest(directory: str) -> dict:
  path = os.path.join(directory, MANIFEST)
  if not os.path.isfile(path):
    raise ArtifactError(f"{path} is missing: {directory!r} is not a jaxseq-export artifact")
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise ArtifactError(f"{path} cannot be read as JSON: {e}") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise ArtifactError(f"{path} is not a {FORMAT} manifest")
  if manifest.get("format_version") != FORMAT_VERSION:
    raise ArtifactError(
      f"{path} has format version {manifest.get('format_version')}; this "
      f"jaxseq reads version {FORMAT_VERSION}: export the workdir again"
    )
  return manifest


def use_compilation_cache():
  """Keeps the compiled searches on disk, so that a later start loads them instead of
  compiling: $JAX_COMPILATION_CACHE_DIR when set, else $JAXSEQ_XLA_CACHE, else
  ~/.cache/jaxseq/xla (JAX's persistent compilation cache; an entry is keyed by the
  program, the device and the compiler flags, so it is never used for another)."""
  # JAX is imported where it is used: it takes 1.6 s, and jaxseq-translate and jaxseq-serve
  # import this module before they parse their flags.
  import jax

  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return
  directory = os.environ.get("JAXSEQ_XLA_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "jaxseq", "xla"
  )
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class Artifact:
  """An exported translator: tokenizers, parameters and one beam search per (beam size,
  source width), each compiled on its first call for a batch size (and kept in the
  persistent compilation cache where the command turned it on, see `use_compilation_cache`)."""

  def __init__(self, directory: str):
    from jax import export  # here, not at the top: see use_compilation_cache

    manifest = _read_manifest(directory)
    for name, expected in manifest["sha256"].items():
      path = os.path.join(directory, name)
      if not os.path.isfile(path):
        raise ArtifactError(f"{path} is missing: the artifact is incomplete; export it again")
      if sha256(path) != expected:
        raise ArtifactError(
          f"{path} does not match the SHA-256 in {MANIFEST}: the file was "
          "changed or damaged; export the workdir again"
        )
    self.manifest = manifest
    self.src_vocab = tokenizers.load(os.path.join(directory, manifest["tokenizers"]["source"]))
    self.tgt_vocab = tokenizers.load(os.path.join(directory, manifest["tokenizers"]["target"]))
    with np.load(os.path.join(directory, manifest["params"])) as saved:
      self.leaves = [saved[f"arr_{i}"] for i in range(manifest["num_params"])]
    self.max_length = int(manifest["max_length"])
    self.step = manifest["source"]["step"]
    self.beam_sizes = [int(b) for b in manifest["beam_sizes"]]
    # The manifest stores config.decode as a dict (its "eval_search" is not an option).
    self.options = DecodeOptions.from_dict(manifest["decode"], strict=False)
    self.scalars = tuple(manifest.get("scalars", OLD_SCALARS))
    # Constraint tokens a sentence may have (0: none, as in artifacts older than the field).
    self.max_constraint_tokens = int(manifest.get("max_constraint_tokens", 0))
    load = lambda name: export.deserialize(
      bytearray(open(os.path.join(directory, name), "rb").read())
    )
    self._functions = {
      (int(beam), int(width), 0): load(name)
      for beam, by_width in manifest["functions"].items()
      for width, name in by_width.items()
    }
    self._functions.update(
      {
        (int(beam), int(width), self.max_constraint_tokens): load(name)
        for beam, by_width in manifest.get("constrained_functions", {}).items()
        for width, name in by_width.items()
      }
    )

  def search_batch(self, batch: batching.Batch, options: DecodeOptions) -> batching.SearchResult:
    """One padded batch ([batch, width] sources, with or without constraints) -> its
    SearchResult, options.nbest per row."""
    src, cons = batch.src, batch.constraints
    size = 0 if cons is None else cons.tokens.shape[1]
    function = self._functions[(options.beam_size, src.shape[1], size)]
    types = {"max_length_offset": np.int32}
    scalars = tuple(types.get(name, np.float32)(getattr(options, name)) for name in self.scalars)
    if cons is None:
      out = function.call(self.leaves, src, *scalars)
    else:
      out = function.call(self.leaves, src, *(np.asarray(x, np.int32) for x in cons), *scalars)
    return batching.SearchResult(*(np.asarray(x)[:, : options.nbest] for x in out))

  def translate_ids(
    self,
    sources: list[np.ndarray],
    options: DecodeOptions,
    *,
    batch_size: int,
    prefixes: list[list[int]] | None = None,
    constraints: list[list[list[int]]] | None = None,
    progress: str | None = None,
  ) -> list[batching.Output]:
    """Beam search of source id arrays (with per-source constraints up to
    max_constraint_tokens), in order; ValueError for what was not exported."""
    if options.search is not Search.BEAM:
      raise ValueError(
        f"an exported translator has beam search only, not {options.search.value!r}; "
        "translate with --workdir for it"
      )
    if any(prefixes or []):
      raise ValueError(
        "an exported translator does not force prefixes; translate with --workdir for it"
      )
    if options.coverage_penalty > 0 and "coverage_penalty" not in self.scalars:
      raise ValueError(
        "this artifact was exported before the coverage penalty existed and takes none; "
        "export it again, or translate with --workdir"
      )
    if options.beam_size not in self.beam_sizes:
      raise ValueError(
        f"beam size {options.beam_size} was not exported; this artifact has "
        f"{', '.join(map(str, self.beam_sizes))}"
      )
    constrained = None
    if constraints is not None and any(constraints):
      if not self.max_constraint_tokens:
        raise ValueError(
          "this artifact was exported without constraints; export it again with "
          "--max_constraint_tokens, or translate with --workdir"
        )
      constrained = batching.Constrained(constraints, (self.max_constraint_tokens,))
    return batching.translate_in_batches(
      sources,
      lambda batch: self.search_batch(batch, options),
      batch_size=batch_size,
      max_length=self.max_length,
      constrained=constrained,
      progress=progress,
    )
