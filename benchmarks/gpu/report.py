"""Gathers the GPU run's steps into results.json and results.md (benchmarks/gpu/run.sh).

    python -m benchmarks.gpu.report --work WORK --out OUT [--dry_run] [--config FILE]

WORK/status.jsonl holds one line per finished step (name, exit status, seconds, budget,
its result file) and WORK/logs/NAME.log its output. run.sh calls this after every step,
so what is in OUT is up to date even if the run is stopped later. No JAX here: it runs
in a moment.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import shutil

from benchmarks import common

# The steps in the order run.sh runs them, with their titles.
STEPS = {
  "environment": "wheels installed, imports and versions",
  "compare": "jaxseq vs PyTorch, same network and batches",
  "multi30k": "Multi30k trained to completion, test2016 BLEU",
  "utilisation": "training loop: log every step vs every 100",
  "sweep": "batch sweep, jaxseq train tokens/s",
  "translate": "translation throughput",
}
TIMED_OUT = (124, 137)  # timeout(1)'s exit status, and SIGKILL's after its grace period


def _load(path: str | None):
  if not path or not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _log_tail(work: str, name: str, lines: int = 30) -> str:
  try:
    with open(os.path.join(work, "logs", f"{name}.log"), errors="replace") as f:
      return "".join(f.readlines()[-lines:])
  except OSError:
    return ""


def gather(work: str) -> dict:
  """{step: {status, rc, seconds, budget_seconds, result[, log_tail]}} in run order."""
  finished = {}
  if os.path.isfile(os.path.join(work, "status.jsonl")):
    with open(os.path.join(work, "status.jsonl")) as f:
      for line in f:
        if line.strip():
          entry = json.loads(line)
          finished[entry["step"]] = entry
  steps = {}
  for name in STEPS:
    entry = finished.get(name)
    if entry is None:
      steps[name] = {"status": "not run", "result": None}
      continue
    result = _load(entry.get("result"))
    if entry["rc"] in TIMED_OUT:
      status = "timeout"
    elif entry["rc"] != 0 or result is None:
      status = "failed"
    else:
      status = "ok"
    steps[name] = {
      "status": status,
      "rc": entry["rc"],
      "seconds": entry["seconds"],
      "budget_seconds": entry["budget_seconds"],
      "result": result,
    }
    if status != "ok":
      steps[name]["log_tail"] = _log_tail(work, name)
  return steps


def _versions(steps: dict) -> dict:
  env = steps["environment"]["result"]
  if env:
    return env["versions"]
  found = {}
  for package in ("jax", "jaxlib", "flax", "torch"):
    try:
      found[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      found[package] = None
  return found


def _device(steps: dict) -> dict:
  env = steps["environment"]["result"]
  if env:
    return {
      "name": env["device_name"],
      "source": env["device_name_source"],
      "jax_platform": env["jax_platform"],
    }
  for name in ("compare", "sweep", "utilisation"):
    result = steps[name]["result"]
    if result and "hardware" in result:
      return {
        "name": result["hardware"]["device_kind"],
        "source": "jax",
        "jax_platform": result["hardware"]["device_platform"],
      }
  return {"name": "unknown", "source": None, "jax_platform": None}


def _compare_table(result: dict) -> list[str]:
  rows = []
  for c in result.get("comparisons", []):
    bf16 = c.get("jaxseq_bfloat16", {})
    rows.append(
      {
        "size": c["size"]["name"],
        "hidden": c["size"]["hidden_size"],
        "batch": c["size"]["batch_size"],
        "f32": c["jaxseq"]["tokens_per_second"],
        "bf16": bf16.get("tokens_per_second"),
        "torch": c["torch"]["tokens_per_second"],
        "torch_on": c["torch_device"],
        "speedup": c["speedup"],
        "speedup_bf16": c.get("speedup_bfloat16"),
        "diff": c["first_loss_abs_diff"],
      }
    )
  return [
    common.markdown_table(
      rows,
      [
        ("size", "size", "s"),
        ("hidden", "hidden", "d"),
        ("batch", "batch", "d"),
        ("f32", "jaxseq f32 tokens/s", ",.0f"),
        ("bf16", "jaxseq bf16 tokens/s", ",.0f"),
        ("torch", "PyTorch tokens/s", ",.0f"),
        ("torch_on", "PyTorch on", "s"),
        ("speedup", "f32 / PyTorch", ".2f"),
        ("speedup_bf16", "bf16 / PyTorch", ".2f"),
        ("diff", "first-loss diff", ".1e"),
      ],
    )
  ]


def _sweep_table(result: dict) -> list[str]:
  rows = [
    {
      "batch": p["batch_size"],
      "tokens": p.get("tokens_per_second"),
      "gain": p.get("gain"),
      "compile": p.get("compile_seconds"),
      "error": p.get("error", "")[:60],
    }
    for p in result.get("points", [])
  ]
  size = result["size"]
  return [
    f"Size {size['name']} (hidden {size['hidden_size']}, length {size['length']}); "
    f"doubling stops when tokens/s grows by less than {result['min_gain']:.0%} or at "
    f"batch {result['max_batch']}: stopped by **{result['stop_reason']}**, best batch "
    f"{result['best_batch_size']}.",
    "",
    common.markdown_table(
      rows,
      [
        ("batch", "batch", "d"),
        ("tokens", "tokens/s", ",.0f"),
        ("gain", "gain", "+.1%"),
        ("compile", "compile s", ".1f"),
        ("error", "error", "s"),
      ],
    ),
  ]


def _translate_table(result: dict) -> list[str]:
  rows = [
    {
      "mode": mode,
      "sentences": r["sentences"],
      "sps": r["sentences_per_second"],
      "tps": r["tokens_per_second"],
      "speedup": result["speedup_vs_one_at_a_time"].get(mode),
    }
    for mode, r in result["results"].items()
  ]
  return [
    f"Model: {result['model']}, batch {result['batch_size']}.",
    "",
    common.markdown_table(
      rows,
      [
        ("mode", "mode", "s"),
        ("sentences", "sentences", "d"),
        ("sps", "sentences/s", ",.1f"),
        ("tps", "tokens/s", ",.0f"),
        ("speedup", "vs one at a time (jit)", ".1f"),
      ],
    ),
  ]


def _utilisation_table(result: dict) -> list[str]:
  rows = [
    {
      "every": r["log_every_steps"],
      "median": r["steps_per_second"],
      "mean": r["steps_per_second_mean"],
      "tokens": r["trainer_tokens_per_second"],
      "save": r["checkpoint_every_steps"],
      "batch": r["batch_size"],
    }
    for r in result.get("runs", [])
  ]
  lines = [
    f"`trainer.train_and_evaluate` on {result['config_file']}, {result['num_steps']} "
    "steps; steps/s from the intervals between dispatched steps (median; mean without "
    "compilations, with checkpoint saves and their digest).",
    "",
    common.markdown_table(
      rows,
      [
        ("every", "log_every_steps", "d"),
        ("batch", "batch", "d"),
        ("save", "checkpoint every", "d"),
        ("median", "steps/s (median)", ",.1f"),
        ("mean", "steps/s (mean)", ",.1f"),
        ("tokens", "trainer tokens/s", ",.0f"),
      ],
    ),
  ]
  if "log_every_1_over_100" in result:
    lines += [
      "",
      f"log every step / every 100: {result['log_every_1_over_100']:.2f} (median), "
      f"{result['log_every_1_over_100_mean']:.2f} (mean).",
    ]
  return lines


def _multi30k_table(result: dict) -> list[str]:
  test = result.get("test", {})
  row = {
    "config": result["config"],
    "steps": result["steps"],
    "train": result["train_seconds"],
    "wall": result["wall_seconds"],
    "params": result["num_parameters"],
    "t16": test.get("test2016", {}).get("bleu"),
    "t17": test.get("test2017", {}).get("bleu"),
    "chrf": test.get("test2016", {}).get("chrf"),
    "val": result["heldout"].get("bleu"),
  }
  return [
    common.markdown_table(
      [row],
      [
        ("config", "config", "s"),
        ("steps", "steps", "d"),
        ("train", "train s", ".1f"),
        ("wall", "wall s", ".1f"),
        ("params", "parameters", ",d"),
        ("t16", "test2016 BLEU", ".2f"),
        ("t17", "test2017 BLEU", ".2f"),
        ("chrf", "test2016 chrF", ".2f"),
        ("val", "validation BLEU", ".2f"),
      ],
    ),
    "",
    "BLEU: sacreBLEU, cased, detokenized, beam search (config.decode).",
  ]


TABLES = {
  "compare": _compare_table,
  "sweep": _sweep_table,
  "translate": _translate_table,
  "utilisation": _utilisation_table,
  "multi30k": _multi30k_table,
}


def markdown(record: dict) -> str:
  device, versions = record["device"], record["versions"]
  lines = [
    f"# jaxseq on {device['name']}" + (" (dry run)" if record["dry_run"] else ""),
    "",
    f"Device: {device['name']} (read from {device['source']}); JAX platform "
    f"{device['jax_platform']}; jax {versions.get('jax')}, jaxlib {versions.get('jaxlib')},"
    f" flax {versions.get('flax')}, torch {versions.get('torch')}; "
    f"{record['finished']}, {record['total_seconds']:.0f} s in all; "
    f"Multi30k config {record['config']}."
    + (
      " Dry run: tiny sizes on the CPU, the numbers check the code paths only."
      if record["dry_run"]
      else ""
    ),
    "",
    common.markdown_table(
      [{"step": n, "what": STEPS[n], **s} for n, s in record["steps"].items()],
      [
        ("step", "step", "s"),
        ("what", "what", "s"),
        ("status", "status", "s"),
        ("seconds", "seconds", ".0f"),
        ("budget_seconds", "budget s", "d"),
      ],
    ),
  ]
  for name, table in TABLES.items():
    step = record["steps"][name]
    if step["result"] is None:
      continue
    lines += ["", f"## {STEPS[name]}", ""]
    try:
      lines += table(step["result"])
    except (KeyError, TypeError, ValueError) as e:  # a partial record: say so, go on
      lines.append(f"(incomplete record: {type(e).__name__}: {e})")
  for name, step in record["steps"].items():
    if step["status"] in ("failed", "timeout"):
      tail = step.get("log_tail", "").splitlines()[-15:]
      lines += [
        "",
        f"## {name}: {step['status']} (exit status {step['rc']}), the end of its log",
        "",
        "```",
        *tail,
        "```",
      ]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work", required=True, help="the run's work folder")
  parser.add_argument("--out", required=True, help="where results.json and results.md go")
  parser.add_argument("--config", default="", help="the Multi30k config file")
  parser.add_argument("--dry_run", action="store_true")
  parser.add_argument("--started", type=float, help="the run's start (seconds since epoch)")
  args = parser.parse_args(argv)
  steps = gather(args.work)
  now = datetime.datetime.now(datetime.UTC)
  record = {
    "dry_run": args.dry_run,
    "config": args.config,
    "finished": now.strftime("%Y-%m-%d %H:%M UTC"),
    "total_seconds": now.timestamp() - args.started if args.started else 0.0,
    "device": _device(steps),
    "versions": _versions(steps),
    "ok": all(s["status"] == "ok" for s in steps.values()),
    "steps": steps,
  }
  os.makedirs(args.out, exist_ok=True)
  common.write_json(os.path.join(args.out, "results.json"), record)
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write(markdown(record))
  multi30k = steps["multi30k"]["result"]
  if multi30k:  # also as its own file, the format benchmarks/quality/results_table.py reads
    shutil.copy(_status_result(args.work, "multi30k"), args.out)


def _status_result(work: str, name: str) -> str:
  with open(os.path.join(work, "status.jsonl")) as f:
    entries = [json.loads(line) for line in f if line.strip()]
  return [e["result"] for e in entries if e["step"] == name][-1]


if __name__ == "__main__":
  main()
