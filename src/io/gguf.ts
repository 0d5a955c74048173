/**
 * GGUF v3, the single-file model format of llama.cpp (and of the npm package node-llama-cpp).
 *
 *   "GGUF" | u32 version = 3 | u64 tensor_count | u64 kv_count | KVs | tensor infos |
 *   zero padding to `alignment` | data section (each tensor padded to `alignment`)
 *
 * All integers are little-endian. A string is a u64 byte length and UTF-8 bytes (no terminator). A KV
 * is key (string), u32 value type, value; an ARRAY value is u32 item type, u64 count, items. A tensor
 * info is name, u32 n_dims, n_dims u64 dims INNERMOST FIRST (the reverse of the PyTorch shape), u32
 * ggml type and a u64 offset into the data section. `general.alignment` (UINT32, default 32) sets
 * the alignment.
 *
 * Memory order needs no transposition: ggml's dim 0 is the contiguous one, exactly as PyTorch's last
 * dim is, so a row-major PyTorch tensor's values are written as they are and only the shape list is
 * reversed.
 *
 * The decoder is strict: it rejects what llama.cpp's gguf_init_from_file rejects (bad magic or
 * version, duplicate keys or tensor names, names of 64+ bytes, more than 4 dims, overflowing shapes,
 * rows that are not whole blocks, offsets other than the running sum of padded sizes) and a little
 * more (0-dim tensors, zero dims, invalid UTF-8, BOOL bytes other than 0/1, ggml types this module
 * cannot convert). Every size field is checked against the bytes actually present before it is used
 * for a loop or an allocation, so a corrupt count of 2^60 fails at once with a FormatError instead of
 * exhausting memory.
 */
//
// This file re-exports the public API; the code lives in ./gguf/: format.ts (constants, type
// tables, types, layout helpers), values.ts (value constructors), quantize.ts (Q8_0/Q4_0),
// write.ts (encoder) and read.ts (decoder).
export {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPE,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_TYPE,
  GGUF_VERSION,
  type GgmlType,
  type GgufArray,
  type GgufBigIntType,
  type GgufContents,
  type GgufEncodeInput,
  type GgufNumberType,
  type GgufTensor,
  type GgufTensorInput,
  type GgufType,
  type GgufValue,
  ggufTensorBytes,
} from './gguf/format.ts';
export { type GgufArrayKinds, arr, bool, f32, f64, i16, i32, i64, i8, str, u16, u32, u64, u8 } from './gguf/values.ts';
export { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from './gguf/quantize.ts';
export { encodeGguf, writeGgufFile } from './gguf/write.ts';
export { decodeGguf, readGgufFile, tensorToFloat32 } from './gguf/read.ts';
