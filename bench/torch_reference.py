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

Training mode (scripts/torch-compare.ts): with --train-batches it trains osp-lab's model on given token
batches from given initial weights, with the hyper-parameters of an osp-lab run config, and writes the
loss per step and the final OSP kurtosis as JSON (see `train_main` below):

  /usr/bin/python3 bench/torch_reference.py --train-batches batches.safetensors --init INIT_DIR \\
      --run-config run-config.json --monitor-batch monitor.safetensors --out torch.json --threads 1

With --save-hf DIR it also writes the weights it ends with as a Hugging Face Llama directory (config.json and
model.safetensors, written here without the safetensors package: see `save_hf`), which every osp command that
reads a model opens as it opens a model trained by transformers (`npx osp analyze DIR --text FILE ...`). Only a
plain Llama run can be saved so (norm rmsnorm, embedding plain): an OSP run's parameters (Single-Scale RMSNorm's
scalar, EmbProj's matrices) are not a Llama's until folded, which is `osp export`'s job on an osp-lab checkpoint.
"""
import argparse
import json
import math
import os
import re
import struct
import sys
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


def main(a):
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


# ----------------------------------------------------------------------------------------------------
# Training mode: the same run as osp-lab's `train` (src/train/trainer.ts), step for step.
#
# Everything below re-implements osp-lab's arithmetic from its sources, not from torch's own modules:
#   model       src/model/transformer.ts, layers.ts, norms.ts, embeddings.ts (HF names, [out, in] layout)
#   loss        mean over B*T rows of logsumexp(logits) - logits[target] (src/ops/cross_entropy.ts)
#   step        src/train/trainer.ts: accumulate `accum` micro-batches, global grad norm in float32,
#               non-finite guard, clip by clip / (norm + 1e-6) when norm > clip, update at lr * factor
#   schedule    src/optim/schedule.ts (constant, cosine, wsd; 0-based step)
#   routing     src/optim/routing.ts (user rules first, then the default rule)
#   AdamW       src/optim/adamw.ts + src/ops/adamw_update.ts (decay first, bias corrections in float64,
#               norm scales exempt from decay through the noDecay globs)
#   Muon        src/optim/muon.ts + src/ops/newton_schulz.ts (no torch.optim: the exact formulas)
#   kurtosis    src/metrics/outliers.ts ospKurtosis and aggregateOspKurtosis over the taps of
#               src/train/callbacks/outliers.ts
# ----------------------------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path):
    """The tensors of a safetensors file by name: u64 LE header length N, N bytes of JSON, data."""
    if sys.byteorder != "little":
        raise SystemExit("read_safetensors: safetensors data is little-endian; this host is not")
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SystemExit(f"{path}: not a safetensors file ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise SystemExit(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(e["dtype"])
        if dtype is None:
            raise SystemExit(f"{path}: tensor '{name}' has unsupported dtype {e['dtype']}")
        begin, end = e["data_offsets"]
        shape = [int(d) for d in e["shape"]]
        count = math.prod(shape)
        size = torch.empty(0, dtype=dtype).element_size()
        if end - begin != count * size or end > len(data):
            raise SystemExit(f"{path}: tensor '{name}' [{shape}] {e['dtype']} has data_offsets {begin}..{end}")
        # bytearray: a writable copy, so torch owns memory it may write to.
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if count > 0 else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(shape)
    return out


TORCH_TO_SAFETENSORS = {torch.float32: "F32"}


def write_safetensors(path, tensors, metadata=None):
    """
    Writes float32 tensors (name -> tensor, in the given order) as a safetensors file: u64 little-endian
    header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}}, data_offsets relative to the
    data, and an optional __metadata__ of strings), padded with spaces to a multiple of 8 as the
    safetensors package does, then each tensor's raw little-endian bytes, row-major, back to back.
    Written to a temporary name and renamed, so a crash never leaves a half-written file under `path`.
    """
    if sys.byteorder != "little":
        raise SystemExit("write_safetensors: safetensors data is little-endian; this host is not")
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        dtype = TORCH_TO_SAFETENSORS.get(t.dtype)
        if dtype is None:
            raise SystemExit(f"write_safetensors: tensor '{name}' is {t.dtype}; only float32 is written")
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def param_names(c):
    """Parameter names in osp-lab's order (src/model/transformer.ts paramSpecs)."""
    names = ["model.embed_tokens.weight"]
    for i in range(c["layers"]):
        p = f"model.layers.{i}"
        names += [f"{p}.input_layernorm.weight", f"{p}.self_attn.q_proj.weight", f"{p}.self_attn.k_proj.weight",
                  f"{p}.self_attn.v_proj.weight", f"{p}.self_attn.o_proj.weight", f"{p}.post_attention_layernorm.weight",
                  f"{p}.mlp.gate_proj.weight", f"{p}.mlp.up_proj.weight", f"{p}.mlp.down_proj.weight"]
    names.append("model.norm.weight")
    if c["embproj"]:
        names += ["model.embed_proj.weight", "model.head_proj.weight"]
    if not c["tie"]:
        names.append("lm_head.weight")
    return names


def load_init(init_dir, run_model):
    """
    The model config and initial weights of a Hugging Face Llama directory (config.json and
    model.safetensors). Hugging Face's config has no words for osp-lab's modules, so they are read off the
    tensors: norm scales of shape [1] are Single-Scale RMSNorm, `model.embed_proj.weight` means EmbProj
    (unfolded: a plain Llama export folds both away, which changes what is trained). Every size is
    checked against the run config's model section.
    """
    with open(os.path.join(init_dir, "config.json")) as f:
        j = json.load(f)
    w = read_safetensors(os.path.join(init_dir, "model.safetensors"))
    heads = j["num_attention_heads"]
    c = {
        "vocab": j["vocab_size"], "d": j["hidden_size"], "inter": j["intermediate_size"],
        "layers": j["num_hidden_layers"], "heads": heads, "kv_heads": j.get("num_key_value_heads") or heads,
        "head_dim": j.get("head_dim") or j["hidden_size"] // heads, "max_len": j["max_position_embeddings"],
        "eps": j.get("rms_norm_eps", 1e-6), "theta": j.get("rope_theta", 10000.0),
        "tie": bool(j.get("tie_word_embeddings", False)),
        "ssnorm": "model.norm.weight" in w and w["model.norm.weight"].numel() == 1,
        "embproj": "model.embed_proj.weight" in w,
    }
    mine = {
        "vocabSize": c["vocab"], "hiddenSize": c["d"], "numLayers": c["layers"], "numHeads": c["heads"],
        "numKvHeads": c["kv_heads"], "headDim": c["head_dim"], "intermediateSize": c["inter"], "normEps": c["eps"],
        "ropeTheta": c["theta"], "tieEmbeddings": c["tie"], "norm": "ssnorm" if c["ssnorm"] else "rmsnorm",
        "embedding": "embproj" if c["embproj"] else "plain",
    }
    diff = [f"{k}: run {run_model.get(k)!r}, {init_dir} {v!r}" for k, v in mine.items() if run_model.get(k) != v]
    if diff:
        raise SystemExit("the initial weights do not match the run config's model: " + "; ".join(diff))
    names = param_names(c)
    extra = [n for n in w if n not in names and not n.endswith("rotary_emb.inv_freq")]
    missing = [n for n in names if n not in w]
    if extra or missing:
        raise SystemExit(f"{init_dir}: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}")
    return c, {n: w[n].to(torch.float32) for n in names}


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


# The BOS and EOS ids of osp-lab's built-in tokenizers (src/data/tokenizer.ts).
TOKENIZER_IDS = {"bytes": (256, 257), "gpt2": (50256, 50256)}


def check_save_hf(a, c):
    """Refuses --save-hf, before any training, for a run it cannot save or a directory it would overwrite."""
    if c["ssnorm"] or c["embproj"]:
        which = " and ".join(n for n, on in (("Single-Scale RMSNorm (norm scales of shape [1])", c["ssnorm"]),
                                             ("EmbProj (model.embed_proj / model.head_proj)", c["embproj"])) if on)
        raise SystemExit(
            f"--save-hf: this run uses {which}: its parameters are not a plain Llama's until folded (E' = E P1^T, "
            "W' = W P2, the norm scalar widened to a vector), so no Hugging Face Llama directory is written. Save a plain "
            "Llama run only (model.norm rmsnorm, model.embedding plain), or fold an osp-lab checkpoint with "
            "`osp export CHECKPOINT --format hf`")
    if os.path.isdir(a.save_hf) and os.listdir(a.save_hf):
        raise SystemExit(f"--save-hf: {a.save_hf} exists and is not empty; choose a new directory (nothing was trained)")
    if os.path.exists(a.save_hf) and not os.path.isdir(a.save_hf):
        raise SystemExit(f"--save-hf: {a.save_hf} is a file; expected a new or empty directory")


def save_hf(out_dir, c, run, params):
    """
    Writes `params` (a plain Llama's, HF names and [out, in] layout, as TrainModel holds them) as a Hugging
    Face Llama directory: config.json (LlamaForCausalLM, the fields osp-lab's own export writes,
    src/export/hf.ts hfConfig) and model.safetensors (F32, HF's tensor order). The run's tokenizer: the byte
    tokenizer needs no file (osp-lab reads a 258-token vocabulary as bytes); a tokenizer.json run's file
    (and the tokenizer_config.json next to it) is copied; for 'gpt2' the ids are written, and osp's text
    commands need a tokenizer.json put into the directory. Returns per tensor its shape and the SHA-256
    of its float32 little-endian bytes, taken from the parameter itself (not from the written file).
    """
    import hashlib
    import shutil

    m = run["model"]
    tok = run.get("tokenizer", "bytes")
    bos, eos = TOKENIZER_IDS.get(tok, (None, None))
    os.makedirs(out_dir, exist_ok=True)
    if tok not in TOKENIZER_IDS:
        src = tok if tok.endswith(".json") else os.path.join(tok, "tokenizer.json")
        shutil.copyfile(src, os.path.join(out_dir, "tokenizer.json"))
        side = os.path.join(os.path.dirname(src), "tokenizer_config.json")
        if os.path.exists(side):
            shutil.copyfile(side, os.path.join(out_dir, "tokenizer_config.json"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c["vocab"],
        "hidden_size": c["d"],
        "intermediate_size": c["inter"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "num_key_value_heads": c["kv_heads"],
        "head_dim": c["head_dim"],
        "hidden_act": "silu",
        # The run's own maxSeqLen (what osp-lab's export of the same run says), not the init's.
        "max_position_embeddings": m.get("maxSeqLen", c["max_len"]),
        "rms_norm_eps": c["eps"],
        "rope_theta": c["theta"],
        "rope_scaling": None,
        "tie_word_embeddings": c["tie"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": m.get("initStd", 0.02),
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    names = param_names(c)  # HF order; a tied model has no lm_head
    # Hashed from the parameters themselves, apart from what is written, so that a reader can check the file.
    digests = {n: {"shape": list(params[n].shape),
                   "sha256": hashlib.sha256(params[n].detach().contiguous().numpy().tobytes()).hexdigest()}
               for n in names}
    tensors = {n: params[n].detach().float() for n in names}
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors,
                      {"format": "pt", "source": "bench/torch_reference.py"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    return digests


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


if __name__ == "__main__":
    args = parse()
    if not args.train_batches and (args.save_hf or args.eval_batch):
        raise SystemExit("--save-hf and --eval-batch belong to the training mode (--train-batches)")
    if args.train_batches:
        train_main(args)
    else:
        main(args)
