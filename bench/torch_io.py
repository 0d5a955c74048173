"""The files of bench/torch_reference.py's training mode (bench/torch_train.py), without the safetensors package.

  read_safetensors, write_safetensors
      the safetensors format by hand: u64 little-endian header length, JSON header, raw tensor data.
  param_names, load_init
      a Hugging Face-style directory (config.json + model.safetensors) as the initial weights, under
      osp-lab's parameter names and order (src/model/transformer.ts paramSpecs), checked against the run
      config's model section; Single-Scale RMSNorm and EmbProj are read off the tensors.
  check_save_hf, save_hf
      --save-hf: the final weights of a plain Llama run (norm rmsnorm, embedding plain) as a Hugging Face
      Llama directory (config.json as src/export/hf.ts hfConfig writes it, model.safetensors in F32),
      which every osp command that reads a model opens as it opens a model trained by transformers.
"""
import json
import math
import os
import struct
import sys

import torch


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
