"""The models of bench/torch_reference.py: osp-lab's Llama-style decoder written in PyTorch, twice.

  Model, Block, Norm, rotate_half, newton_schulz, Muon
      the benchmark mode's model (torch.nn modules, random init from torch.manual_seed(0)): RoPE
      rotate_half, causal softmax attention, SwiGLU, RMSNorm or Single-Scale RMSNorm, optional EmbProj,
      the mean next-token cross-entropy; and its Muon (Nesterov momentum, 5 quintic Newton-Schulz steps,
      the Moonlight scale). Same shapes and the same arithmetic per step as osp-lab's training step.

  TrainModel, osp_kurtosis, measure_kurtosis
      the training mode's model (bench/torch_train.py): osp-lab's Transformer over a dict of named
      parameters given from outside (HF names, [out, in] layout), re-implemented from osp-lab's sources,
      not from torch's modules: src/model/transformer.ts, layers.ts, norms.ts, embeddings.ts; the loss as
      src/ops/cross_entropy.ts (mean over B*T rows of logsumexp(logits) - logits[target]); and the OSP
      kurtosis of src/metrics/outliers.ts (ospKurtosis, aggregateOspKurtosis) over the taps of
      src/train/callbacks/outliers.ts.
"""
import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------------
# The benchmark mode's model and Muon (bench/torch_reference.py main).
# ----------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------
# The training mode's model: osp-lab's arithmetic over given parameters (bench/torch_train.py).
# ----------------------------------------------------------------------------------------------------

class TrainModel:
    """osp-lab's Transformer over a dict of named parameters (HF names, [out, in] layout)."""

    def __init__(self, c, weights):
        self.c = c
        self.params = {n: torch.nn.Parameter(t.clone()) for n, t in weights.items()}
        hd, half = c["head_dim"], c["head_dim"] // 2
        # RoPE tables as src/model/layers.ts ropeTables: angles in float64, rounded once to float32.
        cos = [[0.0] * hd for _ in range(c["max_len"])]
        sin = [[0.0] * hd for _ in range(c["max_len"])]
        for t in range(c["max_len"]):
            for j in range(half):
                a = t * math.pow(c["theta"], (-2 * j) / hd)
                cos[t][j] = cos[t][j + half] = math.cos(a)
                sin[t][j] = sin[t][j + half] = math.sin(a)
        self.cos = torch.tensor(cos, dtype=torch.float64).float()
        self.sin = torch.tensor(sin, dtype=torch.float64).float()

    def norm(self, x, name):
        # y = x * rsqrt(mean(x^2) + eps) * w, w of shape [d] (RMSNorm) or [1] (SSNorm).
        w = self.params[name]
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.c["eps"]) * w

    def forward(self, tokens, taps=None):
        c, P = self.c, self.params
        B, T = tokens.shape
        d, H, Hkv, hd = c["d"], c["heads"], c["kv_heads"], c["head_dim"]
        tap = (lambda name, x: taps.__setitem__(name, x.detach().reshape(B, T, d))) if taps is not None else (lambda *_: None)
        cos, sin = self.cos[:T], self.sin[:T]
        mask = torch.triu(torch.full((T, T), -1e9), 1)

        def heads(y, n):
            return y.reshape(B, T, n, hd).transpose(1, 2)

        def rope(x):
            x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
            return x * cos + torch.cat([-x2, x1], -1) * sin

        x = F.embedding(tokens.reshape(-1), P["model.embed_tokens.weight"])  # [B*T, d]
        if c["embproj"]:
            x = x @ P["model.embed_proj.weight"].T
        tap("embed", x)
        for i in range(c["layers"]):
            l = f"model.layers.{i}"
            a = self.norm(x, f"{l}.input_layernorm.weight")
            tap(f"layers.{i}.attn_in", a)
            q = rope(heads(a @ P[f"{l}.self_attn.q_proj.weight"].T, H))
            k = rope(heads(a @ P[f"{l}.self_attn.k_proj.weight"].T, Hkv))
            v = heads(a @ P[f"{l}.self_attn.v_proj.weight"].T, Hkv)
            if Hkv != H:  # query head h reads key/value head h // (H / Hkv) (HF repeat_kv)
                k = k.repeat_interleave(H // Hkv, dim=1)
                v = v.repeat_interleave(H // Hkv, dim=1)
            scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(hd)) + mask
            att = torch.softmax(scores, -1) @ v  # [B, H, T, hd]
            h = x + att.transpose(1, 2).reshape(B * T, H * hd) @ P[f"{l}.self_attn.o_proj.weight"].T
            f = self.norm(h, f"{l}.post_attention_layernorm.weight")
            tap(f"layers.{i}.ffn_in", f)
            g = f @ P[f"{l}.mlp.gate_proj.weight"].T
            u = f @ P[f"{l}.mlp.up_proj.weight"].T
            x = h + (g * torch.sigmoid(g) * u) @ P[f"{l}.mlp.down_proj.weight"].T
            tap(f"layers.{i}.out", x)
        n = self.norm(x, "model.norm.weight")
        tap("final_norm", n)
        if c["embproj"]:
            n = n @ P["model.head_proj.weight"].T
        head = P["model.embed_tokens.weight"] if c["tie"] else P["lm_head.weight"]
        return (n @ head.T).reshape(B, T, c["vocab"])

    def loss(self, inputs, targets):
        logits = self.forward(inputs)
        return F.cross_entropy(logits.reshape(-1, self.c["vocab"]), targets.reshape(-1))


def osp_kurtosis(x):
    """
    src/metrics/outliers.ts ospKurtosis: per token, mean_i(x^4) / s^4 - 3 with the unbiased variance s^2
    (from power sums), clipped at 0 (a zero-variance token counts 0), averaged over tokens; float64.
    """
    x = x.reshape(-1, x.shape[-1]).double()
    d = x.shape[1]
    s1, s2, s4 = x.sum(1), x.square().sum(1), x.square().square().sum(1)
    var = (s2 - s1 * s1 / d) / (d - 1)
    safe = torch.where(var > 0, var, torch.ones_like(var))
    k = torch.where(var > 0, (s4 / d / (safe * safe) - 3).clamp(min=0), torch.zeros_like(var))
    return float(k.mean())


def measure_kurtosis(model, inputs):
    """Per-tap ospKurtosis and the paper's aggregate (embed, layers 0..L-2 out, final_norm)."""
    taps = {}
    with torch.no_grad():
        model.forward(inputs, taps)
    per_tap = {name: osp_kurtosis(x) for name, x in taps.items()}
    L = model.c["layers"]
    agg = ["embed"] + [f"layers.{i}.out" for i in range(L - 1)] + ["final_norm"]
    return {"aggregate": sum(per_tap[n] for n in agg) / len(agg), "perTap": per_tap}
