#!/usr/bin/python3
"""The peer for `npm run bench -- --peer`: osp-lab's model and optimizers, written in PyTorch (CPU; CUDA with --device cuda).

Same shapes and the same arithmetic per step as osp-lab's training step (src/model, src/optim):
a Llama-style decoder (RoPE rotate_half, causal softmax attention, SwiGLU, RMSNorm or Single-Scale
RMSNorm, optional EmbProj), the mean next-token cross-entropy, and either AdamW on every parameter or
the OSP routing (Muon with Nesterov momentum, 5 quintic Newton-Schulz steps and the Moonlight scale on
the 2-D matrices of the blocks and the EmbProj matrices; AdamW on the rest). Batches are random tokens:
the throughput of a step does not depend on the data.

Run with Debian's python3 and python3-torch, with libopenblas0-pthread installed (otherwise torch uses
a reference BLAS at a few GFLOP/s). Prints one JSON line.

  /usr/bin/python3 bench/torch_reference.py --hidden 128 --optimizer muon --steps 20

With --device cuda (benchmark mode only) the same step runs on the GPU, in float32 with torch's default
matmul precision, and the timers are read after torch.cuda.synchronize() (scripts/gpu-bench.sh):

  python3 bench/torch_reference.py --device cuda --hidden 512 --heads 8 --optimizer adamw --steps 30

Training mode (scripts/torch-compare.ts): with --train-batches it trains osp-lab's model on given token
batches from given initial weights, with the hyper-parameters of an osp-lab run config, and writes the
loss per step and the final OSP kurtosis as JSON (see `train_main` in bench/torch_train.py):

  /usr/bin/python3 bench/torch_reference.py --train-batches batches.safetensors --init INIT_DIR \\
      --run-config run-config.json --monitor-batch monitor.safetensors --out torch.json --threads 1

With --save-hf DIR it also writes the weights it ends with as a Hugging Face Llama directory (config.json and
model.safetensors, written without the safetensors package: see `save_hf` in bench/torch_io.py), which every
osp command that reads a model opens as it opens a model trained by transformers (`npx osp analyze DIR --text
FILE ...`). Only a plain Llama run can be saved so (norm rmsnorm, embedding plain): an OSP run's parameters (Single-Scale RMSNorm's
scalar, EmbProj's matrices) are not a Llama's until folded, which is `osp export`'s job on an osp-lab checkpoint.

This file is the command line (`parse`) and the benchmark mode (`main`); the rest lives next to it:
  bench/torch_llama.py   the models: the benchmark's torch.nn Llama and its Muon; the training mode's
                         TrainModel over named parameters; the OSP kurtosis
  bench/torch_train.py   the training mode: routing, schedule, the exact AdamW and Muon, `train_main`
  bench/torch_io.py      safetensors read/write, the initial weights' directory, --save-hf
"""
import argparse
import json
import os
import sys
import time

# The modules next to this file (bench/torch_*.py): on sys.path already when this file runs as a script,
# not when it is loaded some other way (python3 -m, runpy, an import).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import torch  # noqa: E402

from torch_llama import Model, Muon  # noqa: E402
from torch_train import train_main  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--optimizer", choices=["adamw", "muon"], default="muon")
    p.add_argument("--norm", choices=["rmsnorm", "ssnorm"], default="ssnorm")
    p.add_argument("--embedding", choices=["plain", "embproj"], default="embproj")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the benchmark mode's step runs (default cpu; cuda synchronises before each timer read)")
    t = p.add_argument_group("training mode (--train-batches, --init and --run-config are required)")
    t.add_argument("--train-batches", metavar="FILE", help="safetensors: int32 'inputs' and 'targets' [steps*accum, B, T]")
    t.add_argument("--init", metavar="DIR", help="initial weights: config.json + model.safetensors (osp-lab names)")
    t.add_argument("--run-config", metavar="JSON", help="the resolved osp-lab run config (optimizers, schedule, guard)")
    t.add_argument("--monitor-batch", metavar="FILE", help="safetensors: int32 'inputs' [B, T], the outlier monitor's batch")
    t.add_argument("--log-every", type=int, default=0, help="progress line on stderr every K steps (0: none)")
    t.add_argument("--out", metavar="JSON", help="where the result goes (default: stdout)")
    t.add_argument("--eval-batch", metavar="FILE",
                   help="safetensors: int32 'inputs' and 'targets' [N, T]; the mean next-token loss of the final "
                        "weights on it is reported as finalEvalLoss")
    t.add_argument("--save-hf", metavar="DIR",
                   help="write the final weights as a Hugging Face Llama directory (config.json + model.safetensors); "
                        "a plain Llama run only (norm rmsnorm, embedding plain); DIR must be new or empty")
    t.add_argument("--perturb-init", action="store_true",
                   help="move every initial weight one float32 ulp up or down at random (seeded): a control run "
                        "showing how far rounding-level differences alone carry two trajectories apart")
    return p.parse_args()


def main(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)")
    model = Model(a)
    if cuda:
        model = model.to("cuda")
    if a.optimizer == "muon":
        muon = [p for n, p in model.named_parameters() if p.ndim == 2 and (n.startswith("layers.") or "_proj" in n)]
        ids = {id(p) for p in muon}
        rest = [p for p in model.parameters() if id(p) not in ids]
        opts = [Muon(muon), torch.optim.AdamW(rest, lr=0.003, betas=(0.9, 0.95), weight_decay=0.01)]
    else:
        opts = [torch.optim.AdamW(model.parameters(), lr=0.003, betas=(0.9, 0.95), weight_decay=0.1)]
    x = torch.randint(0, a.vocab, (a.batch, a.seq))
    y = torch.randint(0, a.vocab, (a.batch, a.seq))
    if cuda:
        x, y = x.to("cuda"), y.to("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        for o in opts:
            o.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1000
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "hidden": a.hidden, "optimizer": a.optimizer, "batch": a.batch, "seq": a.seq,
        "stepMs": ms, "tokensPerSec": a.batch * a.seq / (ms / 1000),
    }
    if cuda:
        out.update({"device": "cuda", "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                    "heads": a.heads, "tf32": bool(torch.backends.cuda.matmul.allow_tf32)})
    print(json.dumps(out))


if __name__ == "__main__":
    args = parse()
    if not args.train_batches and (args.save_hf or args.eval_batch):
        raise SystemExit("--save-hf and --eval-batch belong to the training mode (--train-batches)")
    if args.train_batches and args.device != "cpu":
        raise SystemExit("--device belongs to the benchmark mode; the training mode (--train-batches) runs on the CPU")
    if args.train_batches:
        train_main(args)
    else:
        main(args)
