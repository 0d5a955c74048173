#!/usr/bin/python3
"""The peer for `npm run bench -- --peer`: osp-lab's model and optimizers, written in PyTorch (CPU).

Same shapes and the same arithmetic per step as osp-lab's training step (src/model, src/optim):
a Llama-style decoder (RoPE rotate_half, causal softmax attention, SwiGLU, RMSNorm or Single-Scale
RMSNorm, optional EmbProj), the mean next-token cross-entropy, and either AdamW on every parameter or
the OSP routing (Muon with Nesterov momentum, 5 quintic Newton-Schulz steps and the Moonlight scale on
the 2-D matrices of the blocks and the EmbProj matrices; AdamW on the rest). Batches are random tokens:
the throughput of a step does not depend on the data.

Run with Debian's python3 and python3-torch, with libopenblas0-pthread installed (otherwise torch uses
a reference BLAS at a few GFLOP/s). Prints one JSON line.

  /usr/bin/python3 bench/torch_reference.py --hidden 128 --optimizer muon --steps 20
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F


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
    return p.parse_args()


class Norm(torch.nn.Module):
    def __init__(self, d, single_scale, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1 if single_scale else d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Block(torch.nn.Module):
    def __init__(self, d, heads, inter, single_scale):
        super().__init__()
        self.heads = heads
        self.q = torch.nn.Linear(d, d, bias=False)
        self.k = torch.nn.Linear(d, d, bias=False)
        self.v = torch.nn.Linear(d, d, bias=False)
        self.o = torch.nn.Linear(d, d, bias=False)
        self.gate = torch.nn.Linear(d, inter, bias=False)
        self.up = torch.nn.Linear(d, inter, bias=False)
        self.down = torch.nn.Linear(inter, d, bias=False)
        self.n1 = Norm(d, single_scale)
        self.n2 = Norm(d, single_scale)

    def forward(self, x, cos, sin, mask):
        B, T, d = x.shape
        hd = d // self.heads
        a = self.n1(x)
        split = lambda t: t.view(B, T, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.q(a)), split(self.k(a)), split(self.v(a))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(hd)) + mask
        att = torch.softmax(scores, -1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(B, T, d))
        f = self.n2(x)
        return x + self.down(F.silu(self.gate(f)) * self.up(f))


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        d = a.hidden
        inter = math.ceil(8 * d / 3 / 32) * 32
        ss = a.norm == "ssnorm"
        self.embed = torch.nn.Embedding(a.vocab, d)
        self.embproj = a.embedding == "embproj"
        if self.embproj:
            self.embed_proj = torch.nn.Linear(d, d, bias=False)
            self.head_proj = torch.nn.Linear(d, d, bias=False)
        self.layers = torch.nn.ModuleList(Block(d, a.heads, inter, ss) for _ in range(a.layers))
        self.norm = Norm(d, ss)
        self.head = torch.nn.Linear(d, a.vocab, bias=False)
        hd = d // a.heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(a.seq).float(), inv)
        ang = torch.cat([ang, ang], -1)
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        self.register_buffer("mask", torch.triu(torch.full((a.seq, a.seq), -1e9), 1))

    def forward(self, x, y):
        h = self.embed(x)
        if self.embproj:
            h = self.embed_proj(h)
        for layer in self.layers:
            h = layer(h, self.cos, self.sin, self.mask)
        h = self.norm(h)
        if self.embproj:
            h = self.head_proj(h)
        logits = self.head(h)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))


def newton_schulz(g, steps=5):
    a, b, c = 3.4445, -4.775, 2.0315
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return x.T if g.shape[0] > g.shape[1] else x


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01, momentum=0.95, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                buf = st.setdefault("m", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                u = p.grad + group["momentum"] * buf
                o = newton_schulz(u)
                k = 0.2 * math.sqrt(max(p.shape))
                p.sub_((o * k + p * group["weight_decay"]) * group["lr"])


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a)
    if a.optimizer == "muon":
        muon = [p for n, p in model.named_parameters() if p.ndim == 2 and (n.startswith("layers.") or "_proj" in n)]
        ids = {id(p) for p in muon}
        rest = [p for p in model.parameters() if id(p) not in ids]
        opts = [Muon(muon), torch.optim.AdamW(rest, lr=0.003, betas=(0.9, 0.95), weight_decay=0.01)]
    else:
        opts = [torch.optim.AdamW(model.parameters(), lr=0.003, betas=(0.9, 0.95), weight_decay=0.1)]
    x = torch.randint(0, a.vocab, (a.batch, a.seq))
    y = torch.randint(0, a.vocab, (a.batch, a.seq))

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
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1000
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "hidden": a.hidden, "optimizer": a.optimizer, "batch": a.batch, "seq": a.seq,
        "stepMs": ms, "tokensPerSec": a.batch * a.seq / (ms / 1000),
    }))


if __name__ == "__main__":
    main()
