"""Data parallelism: N simulated CPU devices train exactly like one device.

The device count of a JAX process is fixed when jax is first imported, so each run
happens in a fresh subprocess (this file, run as a script) with JAX_NUM_CPU_DEVICES set.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 4
SAVE_TO_ENV = "JAXSEQ_TEST_SAVE_TO"  # where a run saves its final state (a workdir)
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def collectives_in_loops(hlo: str) -> list[str]:
  """The cross-device ops of an optimized HLO module that run inside a while loop.

  Follows every computation a loop body calls (fusions, nested loops, branches).
  """
  bodies, current = {}, None
  for line in hlo.splitlines():
    if line and not line.startswith(" ") and line.rstrip().endswith("{"):
      current = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
      bodies[current] = []
    elif current is not None and " = " in line:
      bodies[current].append(line)
  called = lambda line: re.findall(
    r"(?:body|condition|calls|to_apply|branch_computations)="
    r"\{?%?([\w.\-]+(?:, %[\w.\-]+)*)",
    line,
  )
  inside, todo = (
    set(),
    [
      b
      for lines in bodies.values()
      for line in lines
      for b in re.findall(r"body=%?([\w.\-]+)", line)
    ],
  )
  while todo:
    name = todo.pop()
    if name not in inside:
      inside.add(name)
      todo += [
        n.lstrip("%")
        for line in bodies.get(name, [])
        for group in called(line)
        for n in group.split(", ")
      ]
  return [
    line.strip()[:120]
    for name in inside
    for line in bodies.get(name, [])
    if any(f" {op}(" in line or f"{op}-start(" in line for op in COLLECTIVES)
  ]


def _tiny_config():
  from configs import default

  config = default.get_config()
  config.data.num_train = 96
  config.data.num_eval = 8
  config.model.embed_size = 8
  config.model.hidden_size = 16
  config.model.attention_size = 8
  config.model.max_length = 8
  config.model.dropout = 0.1  # per-example dropout keys must not depend on sharding
  config.teacher_forcing_ratio = 0.5  # nor must the per-step coin flips
  config.batch_size = 8
  config.warmup_steps = 0
  config.lr_schedule = "constant"
  return config


def _train_losses() -> dict:
  """Trains the tiny config for NUM_STEPS on every visible device; reports what it saw."""
  import jax

  from jaxseq.data import corpora, input_pipeline
  from jaxseq.model import seq2seq
  from jaxseq.training import parallel, steps, trainer

  config = _tiny_config()
  corpus = corpora.load_corpus(config)
  examples, _ = input_pipeline.encode_pairs(
    corpus.train, corpus.src_vocab, corpus.tgt_vocab, config.model.max_length
  )
  model = seq2seq.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
  mesh = parallel.make_mesh()
  state = parallel.init_replicated(
    lambda: steps.create_train_state(model, config, jax.random.key(config.seed)), mesh
  )
  # Each process's iterator yields its own rows of every global batch.
  batches = input_pipeline.TrainIterator(
    examples, config.batch_size, config.model.max_length, seed=config.seed
  )
  host_batches = [next(batches) for _ in range(NUM_STEPS)]
  train_step = (
    trainer._jit_train_step(model, config, mesh)
    .lower(state, parallel.shard_batch(host_batches[0], mesh))
    .compile()
  )
  hlo = train_step.as_text()
  losses, batch_devices = [], set()
  for host_batch in host_batches:
    batch = parallel.shard_batch(host_batch, mesh)
    batch_devices.add(len(batch["src"].sharding.device_set))
    state, metrics = train_step(state, batch)
    losses.append(float(metrics["loss"]) / float(metrics["tokens"]))
  if os.environ.get(SAVE_TO_ENV):  # a checkpoint of the devices' state, for a restore test
    from jaxseq.training import checkpointing

    manager = checkpointing.make_manager(os.environ[SAVE_TO_ENV], config)
    checkpointing.save(manager, state, {}, force=True)
    checkpointing.wait(manager)
  params = jax.tree.leaves(state.params)
  return {
    "devices": jax.device_count(),
    "losses": losses,
    "vocab_sizes": [len(corpus.src_vocab), len(corpus.tgt_vocab)],
    "batch_devices": sorted(batch_devices),
    "params_replicated": all(p.sharding.is_fully_replicated for p in params),
    "all_reduces": len(re.findall(r" all-reduce(?:-start)?\(", hlo)),
    "collectives_in_loops": collectives_in_loops(hlo),
    "param_sum": float(sum(abs(p).sum() for p in params)),
  }


def _start(num_devices: int, **extra_env) -> subprocess.Popen:
  env = {
    **os.environ,
    "JAX_NUM_CPU_DEVICES": str(num_devices),
    "JAX_PLATFORMS": "cpu",
    "PYTHONPATH": REPO,
    **extra_env,
  }
  # XLA_FLAGS (the suite's lower LLVM optimisation level) stays: it changes no HLO pass.
  return subprocess.Popen(
    [sys.executable, os.path.abspath(__file__)],
    env=env,
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _result(process: subprocess.Popen) -> dict:
  out, err = process.communicate(timeout=300)
  assert process.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def four_devices_workdir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("four_devices"))


@pytest.fixture(scope="module")
def one_and_four(four_devices_workdir):
  # Both compile at once; the four-device run also saves its final state.
  one, four = _start(1), _start(4, **{SAVE_TO_ENV: four_devices_workdir})
  return _result(one), _result(four)


def test_four_devices_really_split_the_batch(one_and_four):
  one, four = one_and_four
  assert one["devices"] == 1 and four["devices"] == 4
  assert four["batch_devices"] == [4]
  assert four["params_replicated"]


def test_gradients_are_all_reduced_once_not_inside_the_loops(one_and_four):
  """Each device sums its own rows' gradients; the devices' sums are added once per step."""
  one, four = one_and_four
  assert one["collectives_in_loops"] == [] and four["collectives_in_loops"] == []
  assert 1 <= four["all_reduces"] <= 2, four["all_reduces"]  # the gradients and the sums


LOOP_HLO = """HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%inner (q: f32[4]) -> f32[4] {
  %q = f32[4]{0} parameter(0)
  ROOT %in_fusion = f32[4]{0} all-gather(%q), dimensions={0}
}

%body (p: (s32[], f32[4])) -> (s32[], f32[4]) {
  %p = (s32[], f32[4]) parameter(0)
  %g = f32[4]{0} get-tuple-element(%p), index=1
  %in_loop = f32[4]{0} all-reduce(%g), to_apply=%add
  %f = f32[4]{0} fusion(%in_loop), kind=kLoop, calls=%inner
  ROOT %t = (s32[], f32[4]) tuple(%i, %f)
}

ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  %w = (s32[], f32[4]) while(%t0), condition=%cond, body=%body
  ROOT %after_loop = f32[4]{0} all-reduce(%x), to_apply=%add
}
"""


def test_collectives_in_loops_finds_those_in_a_body_and_what_it_calls():
  found = collectives_in_loops(LOOP_HLO)
  names = sorted(line.removeprefix("ROOT ").split()[0] for line in found)
  assert names == ["%in_fusion", "%in_loop"]


def test_four_devices_follow_the_one_device_loss_trajectory(one_and_four):
  one, four = one_and_four
  assert len(four["losses"]) == NUM_STEPS
  assert one["losses"][-1] < one["losses"][0]  # the run trains, so the comparison means something
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-4)
  np.testing.assert_allclose(four["param_sum"], one["param_sum"], rtol=1e-4)


def test_a_checkpoint_saved_by_four_devices_restores_on_one(one_and_four, four_devices_workdir):
  """Inference restores onto this process's device, not onto the topology that saved."""
  import jax

  from jaxseq.model import seq2seq
  from jaxseq.training import checkpointing, steps

  _, four = one_and_four
  config = _tiny_config()
  model = seq2seq.from_config(config.model, *four["vocab_sizes"])
  abstract = jax.eval_shape(lambda k: steps.create_train_state(model, config, k), jax.random.key(0))
  state, step = checkpointing.restore_for_inference(four_devices_workdir, abstract)
  params = jax.tree.leaves(state.params)
  assert step == NUM_STEPS
  assert all(p.sharding.device_set == {jax.devices()[0]} for p in params)
  np.testing.assert_allclose(float(sum(abs(p).sum() for p in params)), four["param_sum"], rtol=1e-6)


def test_two_processes_of_two_devices_follow_the_one_device_trajectory(one_and_four):
  """Multi-host through jax.distributed, on localhost: each process feeds its own rows."""
  one, _ = one_and_four
  address = f"localhost:{_free_port()}"
  workers = [
    _start(
      2,
      JAXSEQ_DISTRIBUTED="1",
      JAX_COORDINATOR_ADDRESS=address,
      JAX_NUM_PROCESSES="2",
      JAX_PROCESS_ID=str(i),
    )
    for i in range(2)
  ]
  results = [_result(w) for w in workers]
  for r in results:
    assert r["devices"] == 4 and r["batch_devices"] == [4] and r["params_replicated"]
    np.testing.assert_allclose(r["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose(r["param_sum"], one["param_sum"], rtol=1e-4)


def test_distributed_is_requested_by_config_or_environment(monkeypatch):
  import ml_collections

  from jaxseq.training import parallel

  monkeypatch.delenv(parallel.DISTRIBUTED_ENV, raising=False)
  assert not parallel.distributed_requested(ml_collections.ConfigDict({"distributed": False}))
  assert parallel.distributed_requested(ml_collections.ConfigDict({"distributed": True}))
  monkeypatch.setenv(parallel.DISTRIBUTED_ENV, "1")
  assert parallel.distributed_requested(ml_collections.ConfigDict({"distributed": False}))


def test_distributed_without_a_cluster_is_a_config_error():
  # A fresh process: jax.distributed must be initialised before JAX's backend starts.
  env = {
    k: v
    for k, v in os.environ.items()
    if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
  }
  code = (
    "import ml_collections\n"
    "from jaxseq.training import configuration, parallel\n"
    "try:\n"
    "  parallel.initialize_distributed(ml_collections.ConfigDict({'distributed': True}))\n"
    "except configuration.ConfigError as e:\n"
    "  print(e)\n"
  )
  done = subprocess.run(
    [sys.executable, "-c", code],
    env={**env, "PYTHONPATH": REPO},
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert "config.distributed=True" in done.stdout and "JAX_COORDINATOR_ADDRESS" in done.stdout


if __name__ == "__main__":
  from jaxseq.training import parallel

  parallel.initialize_distributed(_tiny_config())  # only where JAXSEQ_DISTRIBUTED=1
  print(json.dumps(_train_losses()))
