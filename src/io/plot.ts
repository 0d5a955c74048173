/**
 * A minimal raster line plot as PNG bytes, for TensorBoard image summaries (the Hessian's spectral
 * density). Dark curve on white, light grid at the quarters; axes ranges are the data's.
 */
import { encodePng } from './png.ts';

export function linePlotPng(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  opts: { width?: number; height?: number } = {},
): { png: Uint8Array; width: number; height: number } {
  const width = opts.width ?? 320;
  const height = opts.height ?? 160;
  const px = new Uint8Array(width * height * 3).fill(255);
  const set = (x: number, y: number, v: number) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const i = (y * width + x) * 3;
    px[i] = px[i + 1] = px[i + 2] = v;
  };
  for (let q = 1; q < 4; q++) {
    for (let x = 0; x < width; x++) set(x, Math.round((q * (height - 1)) / 4), 225);
    for (let y = 0; y < height; y++) set(Math.round((q * (width - 1)) / 4), y, 225);
  }
  let xmin = Infinity;
  let xmax = -Infinity;
  let ymin = Infinity;
  let ymax = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i]!) || !Number.isFinite(ys[i]!)) continue;
    xmin = Math.min(xmin, xs[i]!);
    xmax = Math.max(xmax, xs[i]!);
    ymin = Math.min(ymin, ys[i]!);
    ymax = Math.max(ymax, ys[i]!);
  }
  if (xmax > xmin) {
    const yr = ymax > ymin ? ymax - ymin : 1;
    let prev: [number, number] | undefined;
    for (let i = 0; i < xs.length; i++) {
      if (!Number.isFinite(xs[i]!) || !Number.isFinite(ys[i]!)) continue;
      const x = Math.round(((xs[i]! - xmin) / (xmax - xmin)) * (width - 1));
      const y = Math.round((1 - (ys[i]! - ymin) / yr) * (height - 1));
      if (prev) {
        // Join consecutive points with a vertical run so steep parts stay connected.
        const [x0, y0] = prev;
        for (let xx = Math.min(x0, x); xx <= Math.max(x0, x); xx++) {
          const lo = Math.min(y0, y);
          const hi = Math.max(y0, y);
          for (let yy = lo; yy <= hi; yy++) set(xx, yy, 20);
        }
      } else set(x, y, 20);
      prev = [x, y];
    }
  }
  return { png: encodePng(width, height, px, 3), width, height };
}
