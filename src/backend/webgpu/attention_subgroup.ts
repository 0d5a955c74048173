/**
 * The fused causal attention for software adapters (lavapipe): generated WGSL, one subgroup per
 * workgroup, no workgroup memory and no barriers.
 *
 * Why a second set of kernels. On lavapipe a shader runs on the CPU, its lanes SIMD-vectorised
 * (a subgroup is one AVX2 vector: 8 lanes), and what sets the speed is measured, not guessed:
 *   - a barrier puts the whole shader in coroutine form: the tile kernels (attention_fwd.wgsl and
 *     the backward ones, built for GPUs) ran their forward in 45 ms without barriers against 73 ms
 *     with them (B=16, T=128, 4 heads of 32; results wrong, only timed);
 *   - every load from a storage buffer costs as a gather, one element per lane, lane-uniform
 *     addresses included: ~25 ns per 8-lane load on the 2-core AMD EPYC this was measured on, while
 *     arithmetic is almost free beside it.
 * So each lane keeps R rows of the tile in named registers for the whole kernel (its queries, or
 * its keys for dkv, loaded once) and the other side arrives one block of S rows at a time (S: the
 * subgroup size): lane l loads row l of the block, and subgroupBroadcast hands every lane each of
 * the S rows, which on lavapipe is a register extract. One 8-lane load then feeds R * S
 * multiply-adds instead of R. The forward at that shape went from 73 ms to 16 ms.
 *
 * Registers must be named values: lavapipe lowers an array indexed in a loop to selects over all of
 * its elements, so the code is generated here for the head dimension, unrolled over the R rows,
 * the HD / 4 vec4 channels and the S rows of a block; the loops over blocks stay loops.
 *
 * A workgroup is exactly one subgroup (workgroup size S = the adapter's fixed subgroup size), so
 * every lane of it runs the same loop trip counts: control flow is subgroup-uniform by construction,
 * which WGSL's analysis cannot see through tfjs's flat `index` (it is switched off for these
 * shaders with `diagnostic(off, subgroup_uniformity)`; index.ts adds it with `enable subgroups`).
 *
 * Same contracts and outputs as the tile kernels (src/backend/webgpu/attention.ts): the forward
 * writes [B * T, H * HD + H] (outputs, then log-sum-exps), attention_delta.wgsl gives delta, dq is
 * [B, T, H, HD] and dkv [B * T * Hkv, 2 * HD] (dk then dv per key).
 */

import { SUBGROUPS_MARKER } from './program.ts';

/** Subgroup sizes the generator supports (lavapipe: 4 with SSE, 8 with AVX2, 16 with AVX-512). */
export const SUBGROUP_SIZES = [4, 8, 16] as const;

/**
 * Rows per lane R (a workgroup owns S * R rows): R * HD / 4 <= 16 vec4 per register family, at most
 * 64 rows per workgroup. Shader compile time grows faster than the unrolled code: at HD = 32 on
 * lavapipe (cold cache) R = 8 took 30 s (forward) + 184 s (dq and dkv) to compile, R = 2 took 5 s +
 * 24 s and runs as fast (forward + backward 90 ms against 91 ms at B = 16, T = 128, 4 heads);
 * R = 1 compiles in 3 s + 13 s but runs at 113 ms.
 */
export const rowsPerLane = (S: number, HD: number) => Math.max(1, Math.min(64 / S, Math.floor(16 / Math.ceil(HD / 4))));

const xyzw = ['x', 'y', 'z', 'w'];

/** One unrolled emitter: lines of WGSL with two-space indentation. */
class Emitter {
  readonly lines: string[] = [];
  line(indent: number, text: string) {
    this.lines.push(' '.repeat(2 * indent) + text);
  }
  text() {
    return this.lines.join('\n');
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * vec4 of elements c .. c + 3 of a row at `base` in buffer `buf`, channels past HD read as the last
 * one (clamped) and, when `zero`, multiplied by 0 (so they add nothing to a dot product).
 */
function load4(buf: string, base: string, u: number, HD: number, zero: boolean): string {
  const cs = range(4).map((x) => Math.min(4 * u + x, HD - 1));
  const v = `vec4<f32>(${cs.map((c) => `${buf}[${base} + ${c}]`).join(', ')})`;
  if (!zero || 4 * u + 3 < HD) return v;
  return `${v} * vec4<f32>(${range(4)
    .map((x) => (4 * u + x < HD ? '1.0' : '0.0'))
    .join(', ')})`;
}

/** The shared head: workgroup -> (b, head, block); `heads` is H for queries, Hkv for keys. */
function head(e: Emitter, S: number, headsUniform: 'H' | 'Hkv') {
  e.line(0, SUBGROUPS_MARKER);
  e.line(0, 'const LOWEST : f32 = -3.4028234e38;');
  e.line(0, 'fn main(index : i32) {');
  e.line(1, 'let lane = i32(localId.x);');
  e.line(1, `let wg = index / ${S};`);
  e.line(1, 'let H = uniforms.heads;');
  e.line(1, 'let Hkv = uniforms.kvHeads;');
  e.line(1, 'let T = uniforms.t;');
  e.line(1, 'let block = wg % uniforms.blocks;');
  e.line(1, 'let bh = wg / uniforms.blocks;');
  e.line(1, `let hh = bh % ${headsUniform};`);
  e.line(1, `let b = bh / ${headsUniform};`);
  e.line(1, 'let sc = uniforms.scale;');
}

/**
 * Scores of the lane's R rows against the block's S rows: acc<r>_<g> (vec4: block rows 4g .. 4g + 3)
 * += dot(mine<r>_<u>, broadcast row t of `theirs`), the block row's channels arriving as the vec4
 * `theirs`_<u> loaded by lane t. `mine` and `theirs` name register families.
 */
function dots(e: Emitter, indent: number, acc: string, mine: string, theirs: string, R: number, S: number, HDV: number) {
  for (let u = 0; u < HDV; u++) {
    e.line(indent, '{');
    for (let t = 0; t < S; t++) e.line(indent + 1, `let y${t} = subgroupBroadcast(${theirs}${u}, ${t}u);`);
    for (let r = 0; r < R; r++) {
      for (let g = 0; g < S / 4; g++) {
        const ds = range(4).map((x) => `dot(${mine}${r}_${u}, y${4 * g + x})`);
        e.line(indent + 1, `${acc}${r}_${g} += vec4<f32>(${ds.join(', ')});`);
      }
    }
    e.line(indent, '}');
  }
}

/**
 * out<r>_<u> += sum_t w<r>_<t / 4>[t % 4] * (broadcast row t of `theirs`)_<u>: the weighted sum of the
 * block's rows into the lane's R accumulators.
 */
function accumulate(e: Emitter, indent: number, out: string, w: string, theirs: string, R: number, S: number, HDV: number) {
  for (let u = 0; u < HDV; u++) {
    e.line(indent, '{');
    for (let t = 0; t < S; t++) e.line(indent + 1, `let y${t} = subgroupBroadcast(${theirs}${u}, ${t}u);`);
    for (let r = 0; r < R; r++) {
      for (let t = 0; t < S; t++) {
        e.line(indent + 1, `${out}${r}_${u} = fma(vec4<f32>(${w}${r}_${t >> 2}.${xyzw[t & 3]}), y${t}, ${out}${r}_${u});`);
      }
    }
    e.line(indent, '}');
  }
}

/** vec4 of block rows 4g .. 4g + 3 (from `first`), as i32. */
const rows4 = (first: string, g: number) =>
  `vec4<i32>(${range(4)
    .map((x) => `${first} + ${4 * g + x}`)
    .join(', ')})`;

/** Writes a lane's R rows of HD channels (register family `reg`, scaled by `scale<r>` if given). */
function writeRows(e: Emitter, R: number, HD: number, rowOf: (r: number) => string, reg: string, scale?: (r: number) => string) {
  for (let r = 0; r < R; r++) {
    e.line(1, `if (live${r}) {`);
    e.line(2, `let o = ${rowOf(r)};`);
    for (let c = 0; c < HD; c++) {
      const v = `${reg}${r}_${c >> 2}.${xyzw[c & 3]}`;
      e.line(2, `result[o + ${c}] = ${scale ? `${v} * ${scale(r)}` : v};`);
    }
    e.line(1, '}');
  }
}

/** A kernel's sizes (rows per lane, vec4 per row, vec4 per block row) and its emitter, head emitted. */
function start(HD: number, S: number, headsUniform: 'H' | 'Hkv') {
  const e = new Emitter();
  head(e, S, headsUniform);
  return { e, R: rowsPerLane(S, HD), HDV: Math.ceil(HD / 4), G: S / 4 };
}

/**
 * The lane's rows: queries (forward, dq) i<r> = q0 + lane + S r of head h, or keys (dk/dv) j<r> =
 * k0 + lane + S r of key/value head kvh, clamped to T - 1; live<r> when inside T and the workgroup is
 * not one of a folded dispatch's extras; their offsets qb<r> / kb<r> into [B, T, heads, HD]; then
 * `perRow(r)` for each.
 */
function laneRows(e: Emitter, S: number, R: number, HD: number, side: 'query' | 'key', perRow: (r: number) => void) {
  const [row, first, off, heads, head] = side === 'query' ? ['i', 'q0', 'qb', 'H', 'h'] : ['j', 'k0', 'kb', 'Hkv', 'kvh'];
  if (side === 'query') {
    e.line(1, 'let h = hh;');
    e.line(1, 'let kvh = h / (H / Hkv);');
  } else {
    e.line(1, 'let kvh = hh;');
    e.line(1, 'let group = H / Hkv;');
  }
  e.line(1, `let ${first} = block * ${S * R};`);
  e.line(1, `let width = H * ${HD} + H;`);
  for (let r = 0; r < R; r++) {
    e.line(1, `let ${row}${r} = min(${first} + lane + ${S * r}, T - 1);`);
    e.line(1, `let live${r} = wg < uniforms.groups && ${first} + lane + ${S * r} < T;`);
    e.line(1, `let ${off}${r} = ((b * T + ${row}${r}) * ${heads} + ${head}) * ${HD};`);
    perRow(r);
  }
}

/** Opens the loop over the key blocks up to the workgroup's last query; kb: the offset of the lane's key. */
function keyBlocks(e: Emitter, S: number, R: number, HD: number) {
  e.line(1, `let kEnd = min(T, q0 + ${S * R});`);
  e.line(1, `for (var j0 = 0; j0 < kEnd; j0 += ${S}) {`);
  e.line(2, `let kb = ((b * T + min(j0 + lane, T - 1)) * Hkv + kvh) * ${HD};`);
}

/**
 * The backward's weights for the lane's R rows against a block (dq and dk/dv alike): s = the scores
 * (unscaled, families `score`: [mine, theirs]) and t = dy . v (families `dyv`), then
 * p = exp(scale s - lse) where the causal `mask` holds (else 0) and w = p (t - delta), ds without its
 * scale. `terms(r, g)` gives the vec4 expressions of lse, delta and the mask for block rows 4g .. 4g + 3.
 */
function backwardWeights(
  e: Emitter,
  indent: number,
  score: [string, string],
  dyv: [string, string],
  R: number,
  S: number,
  HDV: number,
  terms: (r: number, g: number) => { lse: string; delta: string; mask: string },
) {
  const G = S / 4;
  for (let r = 0; r < R; r++) {
    for (let g = 0; g < G; g++) {
      e.line(indent, `var s${r}_${g} = vec4<f32>(0.0);`);
      e.line(indent, `var t${r}_${g} = vec4<f32>(0.0);`);
    }
  }
  dots(e, indent, 's', score[0], score[1], R, S, HDV);
  dots(e, indent, 't', dyv[0], dyv[1], R, S, HDV);
  for (let r = 0; r < R; r++) {
    for (let g = 0; g < G; g++) {
      const { lse, delta, mask } = terms(r, g);
      e.line(indent, `let p${r}_${g} = select(vec4<f32>(0.0), exp(s${r}_${g} * sc - ${lse}), ${mask});`);
      e.line(indent, `let w${r}_${g} = p${r}_${g} * (t${r}_${g} - ${delta});`);
    }
  }
}

/**
 * OspCausalAttention's forward: lane l of workgroup (b, h, block) owns queries q0 + l + S r
 * (r < R, q0 = S R block), walks the key blocks j0 = 0, S, .. up to its last query with the online
 * softmax (running max m, sum l, output o), and writes o / l and m + log(l).
 * Bindings: result, q, k, v. Uniforms: heads, kvHeads, t, blocks, groups, scale.
 */
export function attentionForwardSource(HD: number, S: number): string {
  const { e, R, HDV, G } = start(HD, S, 'H');
  laneRows(e, S, R, HD, 'query', (r) => {
    e.line(1, `var m${r} = LOWEST;`);
    e.line(1, `var l${r} = 0.0;`);
    for (let u = 0; u < HDV; u++) {
      e.line(1, `let q${r}_${u} = ${load4('q', `qb${r}`, u, HD, true)};`);
      e.line(1, `var o${r}_${u} = vec4<f32>(0.0);`);
    }
  });
  keyBlocks(e, S, R, HD);
  for (let u = 0; u < HDV; u++) e.line(2, `let k${u} = ${load4('k', 'kb', u, HD, false)};`);
  for (let r = 0; r < R; r++) for (let g = 0; g < G; g++) e.line(2, `var s${r}_${g} = vec4<f32>(0.0);`);
  dots(e, 2, 's', 'q', 'k', R, S, HDV);
  for (let r = 0; r < R; r++) {
    for (let g = 0; g < G; g++) {
      e.line(2, `let x${r}_${g} = select(vec4<f32>(LOWEST), s${r}_${g} * sc, ${rows4('j0', g)} <= vec4<i32>(i${r}));`);
    }
    const maxes = range(G).map((g) => `x${r}_${g}`);
    let mv = maxes[0]!;
    for (const x of maxes.slice(1)) mv = `max(${mv}, ${x})`;
    e.line(2, `let mv${r} = ${mv};`);
    e.line(2, `let mx${r} = max(m${r}, max(max(mv${r}.x, mv${r}.y), max(mv${r}.z, mv${r}.w)));`);
    e.line(2, `let f${r} = exp(m${r} - mx${r});`);
    for (let g = 0; g < G; g++) e.line(2, `let p${r}_${g} = exp(x${r}_${g} - vec4<f32>(mx${r}));`);
    const sum = range(G)
      .map((g) => `p${r}_${g}`)
      .join(' + ');
    e.line(2, `l${r} = l${r} * f${r} + dot(${sum}, vec4<f32>(1.0));`);
    e.line(2, `m${r} = mx${r};`);
    for (let u = 0; u < HDV; u++) e.line(2, `o${r}_${u} = o${r}_${u} * f${r};`);
  }
  for (let u = 0; u < HDV; u++) e.line(2, `let v${u} = ${load4('v', 'kb', u, HD, false)};`);
  accumulate(e, 2, 'o', 'p', 'v', R, S, HDV);
  e.line(1, '}');
  for (let r = 0; r < R; r++) {
    e.line(1, `if (live${r}) {`);
    e.line(2, `result[(b * T + i${r}) * width + H * ${HD} + h] = m${r} + log(l${r});`);
    e.line(1, '}');
    e.line(1, `let inv${r} = 1.0 / l${r};`);
  }
  writeRows(
    e,
    R,
    HD,
    (r) => `(b * T + i${r}) * width + h * ${HD}`,
    'o',
    (r) => `inv${r}`,
  );
  e.line(0, '}');
  return e.text();
}

/**
 * dq: lane l of workgroup (b, h, block) owns queries i = q0 + l + S r and walks the key blocks up to
 * its last query: p = exp(scale q.k - lse_i) (causal), ds = p (dy_i . v - delta_i),
 * dq_i = scale sum_j ds k_j. Bindings: result [B, T, H, HD], q, k, v, dy, fwd, delta.
 */
export function attentionDqSource(HD: number, S: number): string {
  const { e, R, HDV } = start(HD, S, 'H');
  laneRows(e, S, R, HD, 'query', (r) => {
    e.line(1, `let lse${r} = fwd[(b * T + i${r}) * width + H * ${HD} + h];`);
    e.line(1, `let dl${r} = delta[(b * T + i${r}) * H + h];`);
    for (let u = 0; u < HDV; u++) {
      e.line(1, `let q${r}_${u} = ${load4('q', `qb${r}`, u, HD, true)};`);
      e.line(1, `let d${r}_${u} = ${load4('dy', `qb${r}`, u, HD, true)};`);
      e.line(1, `var a${r}_${u} = vec4<f32>(0.0);`);
    }
  });
  keyBlocks(e, S, R, HD);
  for (let u = 0; u < HDV; u++) {
    e.line(2, `let k${u} = ${load4('k', 'kb', u, HD, false)};`);
    e.line(2, `let v${u} = ${load4('v', 'kb', u, HD, false)};`);
  }
  backwardWeights(e, 2, ['q', 'k'], ['d', 'v'], R, S, HDV, (r, g) => ({
    lse: `vec4<f32>(lse${r})`,
    delta: `vec4<f32>(dl${r})`,
    mask: `${rows4('j0', g)} <= vec4<i32>(i${r})`,
  }));
  accumulate(e, 2, 'a', 'w', 'k', R, S, HDV);
  e.line(1, '}');
  writeRows(
    e,
    R,
    HD,
    (r) => `qb${r}`,
    'a',
    () => 'sc',
  );
  e.line(0, '}');
  return e.text();
}

/**
 * dk and dv: lane l of workgroup (b, kv head, block) owns keys j = k0 + l + S r and walks, for each
 * query head of its group, the query blocks from k0 to T: p = exp(scale q_i.k - lse_i) (i >= j),
 * dv_j = sum_i p dy_i, dk_j = scale sum_i p (dy_i . v_j - delta_i) q_i.
 * Bindings: result [B * T * Hkv, 2 * HD] (dk, then dv), q, k, v, dy, fwd, delta.
 */
export function attentionDkvSource(HD: number, S: number): string {
  const { e, R, HDV, G } = start(HD, S, 'Hkv');
  laneRows(e, S, R, HD, 'key', (r) => {
    for (let u = 0; u < HDV; u++) {
      e.line(1, `let k${r}_${u} = ${load4('k', `kb${r}`, u, HD, true)};`);
      e.line(1, `let v${r}_${u} = ${load4('v', `kb${r}`, u, HD, true)};`);
      e.line(1, `var dk${r}_${u} = vec4<f32>(0.0);`);
      e.line(1, `var dv${r}_${u} = vec4<f32>(0.0);`);
    }
  });
  e.line(1, 'for (var h = kvh * group; h < (kvh + 1) * group; h++) {');
  e.line(2, `for (var i0 = k0; i0 < T; i0 += ${S}) {`);
  e.line(3, 'let i = min(i0 + lane, T - 1);');
  e.line(3, `let qb = ((b * T + i) * H + h) * ${HD};`);
  e.line(3, `let lse = fwd[(b * T + i) * width + H * ${HD} + h];`);
  e.line(3, 'let dl = delta[(b * T + i) * H + h];');
  for (let u = 0; u < HDV; u++) {
    e.line(3, `let q${u} = ${load4('q', 'qb', u, HD, false)};`);
    e.line(3, `let d${u} = ${load4('dy', 'qb', u, HD, false)};`);
  }
  for (let g = 0; g < G; g++) {
    const bc = (x: string) =>
      `vec4<f32>(${range(4)
        .map((t) => `subgroupBroadcast(${x}, ${4 * g + t}u)`)
        .join(', ')})`;
    e.line(3, `let lse_${g} = ${bc('lse')};`);
    e.line(3, `let dl_${g} = ${bc('dl')};`);
    e.line(3, `let qi_${g} = ${rows4('i0', g)};`);
  }
  // Queries past T (clamped rows) are masked with the causal condition: i < T as well as i >= j.
  backwardWeights(e, 3, ['k', 'q'], ['v', 'd'], R, S, HDV, (r, g) => ({
    lse: `lse_${g}`,
    delta: `dl_${g}`,
    mask: `(qi_${g} >= vec4<i32>(j${r})) & (qi_${g} < vec4<i32>(T))`,
  }));
  accumulate(e, 3, 'dv', 'p', 'd', R, S, HDV);
  accumulate(e, 3, 'dk', 'w', 'q', R, S, HDV);
  e.line(2, '}');
  e.line(1, '}');
  writeRows(
    e,
    R,
    HD,
    (r) => `((b * T + j${r}) * Hkv + kvh) * ${2 * HD}`,
    'dk',
    () => 'sc',
  );
  writeRows(e, R, HD, (r) => `((b * T + j${r}) * Hkv + kvh) * ${2 * HD} + ${HD}`, 'dv');
  e.line(0, '}');
  return e.text();
}
