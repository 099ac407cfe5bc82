"""benchmarks/speed/profile_step.py: ops grouped by what their JAX names say they are."""

import pytest

from benchmarks import common
from benchmarks.speed import profile_step

LOOP = "transpose(jvp(vmap()))/while/body/closed_call/Seq2Seq.decode_hidden"


@pytest.mark.parametrize(
  "opcode,name,expected",
  [
    (
      "dot",
      f"{LOOP}/Seq2Seq._cells/decoder0.step/transpose",
      ("backward", "decoder loop", "per-step weight-gradient matmul"),
    ),
    (
      "transpose",
      f"{LOOP}/Seq2Seq._cells/decoder0.step/transpose",
      ("backward", "decoder loop", "elementwise and other"),
    ),
    ("fusion", f"{LOOP}/attention/add_any", ("backward", "decoder loop", "gradient accumulation")),
    (
      "fusion",
      "jvp(vmap(Seq2Seq.encode))/encoder/while/body/jit(dynamic_update_index_in_dim)/"
      "dynamic_update_slice",
      ("forward", "encoder", "loop residuals"),
    ),
    (
      "dot",
      "jvp(vmap(Seq2Seq.logits))/output/dot_general",
      ("forward", "readout and output", "matmul"),
    ),
    ("fusion", "jvp()/reduce", ("forward", "loss", "elementwise and other")),
    ("fusion", "cond/branch_1_fun/mul", ("update", "optimizer and other", "elementwise and other")),
  ],
)
def test_ops_are_classified_by_their_names(opcode, name, expected):
  assert profile_step.classify(opcode, name) == expected


def test_a_traced_step_is_split_into_its_parts():
  size = common.Size(
    "tiny", hidden_size=16, embed_size=16, bidirectional=True, batch_size=4, length=6, vocab_size=40
  )
  record = profile_step.profile(size, num_steps=2, top=5)
  total = record["op_ms_total"]
  assert total > 0 and record["step_ms_wall"] > 0
  for key in ("phase", "part", "kind"):
    assert sum(record[f"ms_by_{key}"].values()) == pytest.approx(total)
  assert {"forward", "backward"} <= set(record["ms_by_phase"])
  assert {"encoder", "decoder loop"} <= set(record["ms_by_part"])
  assert len(record["top_ops"]) == 5
  assert record["top_ops"][0]["ms"] >= record["top_ops"][-1]["ms"]
