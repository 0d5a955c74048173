"""The training mode of bench/torch_reference.py (--train-batches): the same run as osp-lab's `train`
(src/train/trainer.ts), step for step, as scripts/torch-compare.ts and test/eval/torch_hf.test.ts use it.

`train_main` trains osp-lab's model (bench/torch_llama.py TrainModel) on given token batches from given
initial weights (bench/torch_io.py load_init), with the hyper-parameters of an osp-lab run config, and
writes the loss, gradient norm and lr factor per step and the OSP kurtosis as JSON; with --save-hf it
also writes the final weights as a Hugging Face Llama directory (bench/torch_io.py save_hf).

Everything here re-implements osp-lab's arithmetic from its sources, not from torch's own modules:
  step        src/train/trainer.ts: accumulate `accum` micro-batches, global grad norm in float32,
              non-finite guard, clip by clip / (norm + 1e-6) when norm > clip, update at lr * factor
  schedule    src/optim/schedule.ts (constant, cosine, wsd; 0-based step)
  routing     src/optim/routing.ts (user rules first, then the default rule)
  AdamW       src/optim/adamw.ts + src/ops/adamw_update.ts (decay first, bias corrections in float64,
              norm scales exempt from decay through the noDecay globs)
  Muon        src/optim/muon.ts + src/ops/newton_schulz.ts (no torch.optim: the exact formulas)
  (model, loss and kurtosis: bench/torch_llama.py)
"""
import json
import math
import os
import re
import sys
import time

import torch

from torch_io import check_save_hf, load_init, read_safetensors, save_hf
from torch_llama import TrainModel, measure_kurtosis


def compile_pattern(pattern):
    """src/optim/optimizer.ts compilePattern: a glob over the whole name ('*' spans dots) or a /regex/."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        r = re.compile(pattern[1:-1])
        return lambda name: r.search(name) is not None
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    r = re.compile("^" + body + "$", re.S)
    return lambda name: r.match(name) is not None


def default_route(name, shape):
    """src/optim/routing.ts defaultRoute."""
    if len(shape) != 2 or "norm" in name:
        return "adamw"
    return "muon" if name.startswith("model.layers.") or name in ("model.embed_proj.weight", "model.head_proj.weight") else "adamw"


def assign_optimizers(rules, params):
    out = {}
    compiled = [(compile_pattern(r["match"]), r["optimizer"]) for r in rules]
    for name, p in params.items():
        which = next((opt for match, opt in compiled if match(name)), None) or default_route(name, list(p.shape))
        if which == "muon" and p.ndim != 2:
            raise SystemExit(f"routing sends '{name}' {list(p.shape)} to muon, which needs a matrix")
        out[name] = which
    return out


def make_schedule(s, steps):
    """src/optim/schedule.ts createSchedule: step (0-based) -> lr factor."""
    kind, warm, lo = s["kind"], s["warmupSteps"], s["minLrRatio"]
    total = s.get("totalSteps") or steps
    if kind == "constant":
        return lambda step: (step + 1) / warm if step < warm else 1.0
    if kind == "cosine":
        def cosine(step):
            if step < warm:
                return (step + 1) / warm
            progress = 1.0 if total == warm else min(1.0, (step - warm) / (total - warm))
            return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))
        return cosine
    if kind == "wsd":
        decay_steps = s["decayFraction"] * total
        decay_start = total - decay_steps

        def wsd(step):
            if step < warm:
                return (step + 1) / warm
            if step < decay_start:
                return 1.0
            return 1 - (1 - lo) * min(1.0, (step - decay_start) / decay_steps)
        return wsd
    raise SystemExit(f"unknown schedule kind {kind!r}")


NS_QUINTIC = (3.4445, -4.775, 2.0315)
NS_CONVERGENT = (2.0, -1.5, 0.5)
NS_POLAR_EXPRESS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def newton_schulz_exact(g, steps, kind):
    """src/ops/newton_schulz.ts: X = G / (scale ||G||_F + eps), then X <- aX + (bA + cA^2) X, A = X X^T."""
    if kind == "quintic":
        tuples = [NS_QUINTIC] * steps
    elif kind == "convergent":
        tuples = [NS_CONVERGENT] * steps
    else:
        tuples = [NS_POLAR_EXPRESS[min(i, len(NS_POLAR_EXPRESS) - 1)] for i in range(steps)]
    scale, eps = (1.02, 1e-6) if kind == "polar_express" else (1.0, 1e-7)
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / (x.norm() * scale + eps)
    for a, b, c in tuples:
        A = x @ x.T
        x = x * a + (A * b + (A @ A) * c) @ x
    return x.T if tall else x


class ExactAdamW:
    """src/optim/adamw.ts: p <- p decay - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), decay = 1 - lr wd."""

    def __init__(self, cfg, params):
        self.cfg = cfg
        exempt = [compile_pattern(p) for p in cfg["noDecay"]]
        self.state = {n: {"m": torch.zeros_like(p), "v": torch.zeros_like(p), "step": 0,
                          "decay": not any(m(n) for m in exempt)} for n, p in params.items()}

    @torch.no_grad()
    def step(self, params, grads, factor):
        b1, b2 = self.cfg["betas"]
        eps, wd, lr = self.cfg["eps"], self.cfg["weightDecay"], self.cfg["lr"] * factor
        for n, g in grads.items():
            s, p = self.state[n], params[n]
            s["step"] += 1
            bc1 = 1 - b1 ** s["step"]
            bc2_sqrt = math.sqrt(1 - b2 ** s["step"])
            decay = 1 - lr * wd if s["decay"] else 1.0
            s["m"] = s["m"] * b1 + g * (1 - b1)
            s["v"] = s["v"] * b2 + g.square() * (1 - b2)
            denom = s["v"].sqrt() / bc2_sqrt + eps
            p.copy_((p * decay if decay != 1 else p) - (s["m"] / denom) * (lr / bc1))


class ExactMuon:
    """src/optim/muon.ts: M <- mu M + g; u = g + mu M (Nesterov); p <- p - lr (k NS(u) + wd p) (moonlight)."""

    def __init__(self, cfg, params):
        self.cfg = cfg
        self.momenta = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def step(self, params, grads, factor):
        c = self.cfg
        mu, wd, lr = c["momentum"], c["weightDecay"], c["lr"] * factor
        for n, g in grads.items():
            p = params[n]
            rows, cols = p.shape
            m = self.momenta[n] * mu + g
            self.momenta[n] = m
            u = g + m * mu if c["nesterov"] else m
            o = newton_schulz_exact(u, c["nsSteps"], c["nsCoefficients"])
            if c["scale"] == "moonlight":
                k = 0.2 * math.sqrt(max(rows, cols))
                p.copy_(p - (o * k + p * wd) * lr)
            else:
                k = math.sqrt(max(1, rows / cols))
                p.copy_(p * (1 - lr * wd) - o * (lr * k))


def train_main(a):
    for flag in ("init", "run_config"):
        if not getattr(a, flag):
            raise SystemExit(f"--train-batches needs --{flag.replace('_', '-')}")
    torch.set_num_threads(a.threads)
    with open(a.run_config) as f:
        run = json.load(f)
    run = run.get("resolved", run)  # a run directory's config.json holds {input, resolved}
    if run["guard"].get("skipZScore", 0) > 0:
        raise SystemExit("guard.skipZScore > 0 (the z-score veto) is not reproduced here; set it to 0")
    c, weights = load_init(a.init, run["model"])
    if a.save_hf:
        check_save_hf(a, c)
    if a.perturb_init:
        gen = torch.Generator().manual_seed(12345)
        for n, w in weights.items():
            up = torch.rand(w.shape, generator=gen) < 0.5
            weights[n] = torch.nextafter(w, torch.where(up, math.inf, -math.inf))
    model = TrainModel(c, weights)
    params = model.params
    steps, accum = run["steps"], run["batch"]["accum"]
    B, T = run["batch"]["size"], run["batch"]["seqLen"]
    data = read_safetensors(a.train_batches)
    inputs, targets = data["inputs"].long(), data["targets"].long()
    if list(inputs.shape[1:]) != [B, T] or inputs.shape != targets.shape or inputs.shape[0] < steps * accum:
        raise SystemExit(f"{a.train_batches}: inputs {list(inputs.shape)}, targets {list(targets.shape)}; "
                         f"the run needs [{steps * accum}, {B}, {T}]")
    monitor = read_safetensors(a.monitor_batch)["inputs"].long() if a.monitor_batch else None
    evalb = read_safetensors(a.eval_batch) if a.eval_batch else None
    if evalb is not None and ("inputs" not in evalb or "targets" not in evalb
                              or evalb["inputs"].shape != evalb["targets"].shape or evalb["inputs"].ndim != 2):
        raise SystemExit(f"{a.eval_batch}: expected int32 'inputs' and 'targets' of one shape [N, T]")
    every = run["monitor"]["every"]

    assignment = assign_optimizers(run["optimizer"]["routing"], params)
    adamw = ExactAdamW(run["optimizer"]["adamw"], {n: p for n, p in params.items() if assignment[n] == "adamw"})
    muon = ExactMuon(run["optimizer"]["muon"], {n: p for n, p in params.items() if assignment[n] == "muon"})
    schedule = make_schedule(run["schedule"], steps)
    clip = run["guard"]["clipGradNorm"]

    out = {"mode": "train", "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": steps,
           "perturbedInit": bool(a.perturb_init), "loss": [], "gradNorm": [], "lrFactor": [], "skipped": 0, "kurtosis": {},
           "assignment": assignment, "decays": {n: s["decay"] for n, s in adamw.state.items()}}
    if monitor is not None:
        out["kurtosis"]["0"] = measure_kurtosis(model, monitor)
    step_times = []
    t_start = time.perf_counter()
    for step in range(steps):
        t0 = time.perf_counter()
        grads, loss_sum = {}, None
        for k in range(accum):
            i = step * accum + k
            for p in params.values():
                p.grad = None
            loss = model.loss(inputs[i], targets[i])
            loss.backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            for n, p in params.items():
                grads[n] = p.grad if n not in grads else grads[n] + p.grad
        if accum > 1:
            grads = {n: g / accum for n, g in grads.items()}
        loss_value = float(loss_sum / accum)
        # Global norm as the trainer: float32 sums of squares per parameter, added in parameter order.
        norm_sq = torch.zeros((), dtype=torch.float32)
        for g in grads.values():
            norm_sq = norm_sq + g.square().sum()
        grad_norm = math.sqrt(float(norm_sq))
        factor = schedule(step)
        if math.isfinite(loss_value) and math.isfinite(grad_norm):
            if clip > 0 and grad_norm > clip:
                scale = clip / (grad_norm + 1e-6)
                grads = {n: g * scale for n, g in grads.items()}
            adamw.step(params, {n: g for n, g in grads.items() if assignment[n] == "adamw"}, factor)
            muon.step(params, {n: g for n, g in grads.items() if assignment[n] == "muon"}, factor)
        else:
            out["skipped"] += 1
        step_times.append(time.perf_counter() - t0)
        out["loss"].append(loss_value)
        out["gradNorm"].append(grad_norm)
        out["lrFactor"].append(factor)
        done = step + 1
        # The outlier monitor's schedule (src/train/callbacks/outliers.ts): step 1, every N, the last.
        if monitor is not None and every > 0 and (done == 1 or done % every == 0 or done == steps):
            out["kurtosis"][str(done)] = measure_kurtosis(model, monitor)
        if a.log_every > 0 and (done % a.log_every == 0 or done == steps):
            print(f"[torch] step {done}/{steps} loss {loss_value:.6f} grad_norm {grad_norm:.4f} "
                  f"lr_factor {factor:.4f} ({time.perf_counter() - t_start:.1f}s)", file=sys.stderr, flush=True)
    out["wallSeconds"] = time.perf_counter() - t_start
    step_times.sort()
    out["stepMsMedian"] = step_times[len(step_times) // 2] * 1000
    if monitor is not None:
        out["finalKurtosis"] = out["kurtosis"].get(str(steps)) or measure_kurtosis(model, monitor)
    if evalb is not None:
        with torch.no_grad():
            out["finalEvalLoss"] = float(model.loss(evalb["inputs"].long(), evalb["targets"].long()))
    if a.save_hf:
        out["savedHf"] = {"dir": os.path.abspath(a.save_hf), "tensors": save_hf(a.save_hf, c, run, params)}
        print(f"[torch] final weights saved as a Hugging Face Llama directory: {a.save_hf} "
              f"({len(out['savedHf']['tensors'])} tensors, F32)", file=sys.stderr, flush=True)
        if run["batch"].get("bos"):
            print("[torch] note: the run's rows began with BOS (batch.bos); a Hugging Face directory does not say so, "
                  "and osp's commands read its rows without BOS", file=sys.stderr, flush=True)
    text = json.dumps(out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
