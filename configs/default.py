"""The embedded default: English number words -> German, trained from nothing on disk.

    python train.py                                   # this config, workdir ./workdir
    python train.py --config=configs/default.py --workdir=/tmp/numbers \
        --config.model.attention=luong_general --config.data.language=fr

Result (python train.py, 2-core Intel Xeon @ 2.50GHz, CPU only): 100.0% exact match and
BLEU 100.0 on 1,000 held-out numbers (beam search), held-out perplexity 1.0004, 75 s wall
time, 54 s of it training (benchmarks/results/numbers_de.json).
"""

import ml_collections


def get_model_config() -> ml_collections.ConfigDict:
  """Model fields shared by every config; each config overrides what it needs."""
  m = ml_collections.ConfigDict()
  m.cell = "gru"                # recurrent cell: gru | lstm
  m.attention = "bahdanau"      # a row of jaxseq.attention.ATTENTIONS (the README's table;
                                # `python -m jaxseq.attention` prints it)
  m.readout = "attentional"     # output vector: attentional (tanh(W [c; h]), Luong) | none (h)
  m.embed_size = 64             # word embedding size, source and target
  m.hidden_size = 128           # recurrent state size of encoder and decoder
  m.attention_size = 128        # inner size of additive (bahdanau, luong_concat) scores
  m.num_layers = 1              # stacked recurrent layers in encoder and decoder
  m.bidirectional = True        # encoder reads the source in both directions
  m.input_feeding = False       # Luong 3.3: feed h~_{t-1} into the next decoder input
  m.dropout = 0.0               # dropout on embeddings, between layers and before the output
  m.max_length = 16             # longest sentence (tokens, EOS included) the model handles
  m.dtype = "float32"           # compute dtype: float32 | bfloat16 (params and loss stay float32)
  m.scan_unroll = 1             # recurrent time steps per lax.scan iteration (speed only)
  m.tie_embeddings = False      # output layer = target embedding (embed == hidden)
  return m


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0                       # root of every random stream (data order, init, dropout)
  config.dataset = "numbers"            # numbers (generated in-process)
  config.distributed = False            # start jax.distributed first (or JAXSEQ_DISTRIBUTED=1)

  config.data = ml_collections.ConfigDict()
  config.data.language = "de"           # numbers: target language, de | fr
  config.data.num_train = 20_000        # numbers: training pairs (drawn with repetition)
  config.data.num_eval = 1_000          # numbers: held-out pairs, disjoint from training

  config.model = get_model_config()

  config.batch_size = 64                # sentence pairs per step (global, over all devices)
  config.bucket_lengths = ""            # padded lengths of training batches, e.g. "8,12,16,24,32";
                                        # "" = 8, 16, 32, ... up to model.max_length
  config.num_train_steps = 1_000        # optimizer steps
  config.learning_rate = 3e-3           # peak learning rate
  config.lr_schedule = "warmup_cosine"  # constant | warmup_cosine | warmup_rsqrt
  config.warmup_steps = 100             # linear warmup from 0 to the peak
  config.grad_clip_norm = 1.0           # clip gradients to this global norm (0 disables)
  config.label_smoothing = 0.0          # mass spread uniformly over the target vocabulary
  config.teacher_forcing_ratio = 1.0    # chance per step to feed the reference token (else own argmax)
  config.max_bad_steps = 20             # stop after this many non-finite steps in a row
  config.lr_plateau_factor = 0.0        # rate *= this when held-out loss stalls; 0 = off
  config.lr_plateau_patience = 2        # ... after this many evaluations without improvement
  config.early_stopping_patience = 0    # stop after N evals without better BLEU; 0 = off
  config.average_last_checkpoints = 0   # also score the mean params of the newest K; 0 = off

  config.checkpoint_every_steps = 250   # save train state and data position this often
  config.keep_checkpoints = 3           # newest checkpoints kept, plus the best by held-out loss
  config.step_log = False               # append each step's loss to <workdir>/steps.jsonl

  config.log_every_steps = 100          # loss / tokens-per-second reporting interval
  config.eval_every_steps = 500         # held-out loss and BLEU interval
  config.num_samples = 5                # translations printed at the end
  config.num_attention_plots = 3        # attention_*.png written at the end

  config.decode = ml_collections.ConfigDict()
  config.decode.beam_size = 4           # hypotheses kept per step by beam search (1 = greedy)
  config.decode.alpha = 0.6             # GNMT length penalty ((5 + len) / 6) ** alpha; 0 = none
  config.decode.nbest = 1               # hypotheses returned per sentence (at most beam_size)
  config.decode.max_length_ratio = 2.0  # output length limit: ratio * source tokens + offset,
  config.decode.max_length_offset = 4   # ...capped by model.max_length
  config.decode.eval_search = "greedy"  # search for the BLEU of periodic evaluation: greedy | beam
  return config
