/**
 * Namespaced metrics of one step ('train/loss', 'eval/loss', 'outliers/layers.3.out/osp_kurtosis').
 * Callbacks record; sinks read. Scalars go to every sink; histograms and images only to sinks that
 * can show them (TensorBoard). Cleared by the trainer after every step.
 */
export interface ImageMetric {
  png: Uint8Array;
  width: number;
  height: number;
}

export class MetricsRecorder {
  private values = new Map<string, number>();
  private histos = new Map<string, ArrayLike<number>>();
  private imgs = new Map<string, ImageMetric>();
  private at = new Map<number, { values: Map<string, number>; imgs: Map<string, ImageMetric> }>();

  record(name: string, value: number): void {
    this.values.set(name, value);
  }

  /**
   * A scalar that describes an earlier (or this) step, e.g. a Hessian probe of step 10's weights that
   * finished at step 20. Sinks log it under `step`, so results arriving together never overwrite
   * each other.
   */
  recordAt(step: number, name: string, value: number): void {
    this.slot(step).values.set(name, value);
  }

  /** An image that describes `step` (see recordAt). */
  recordImageAt(step: number, name: string, image: ImageMetric): void {
    this.slot(step).imgs.set(name, image);
  }

  private slot(step: number) {
    let s = this.at.get(step);
    if (!s) this.at.set(step, (s = { values: new Map(), imgs: new Map() }));
    return s;
  }

  /** What recordAt/recordImageAt recorded, by step in increasing order. */
  byStep(): { step: number; values: [string, number][]; images: [string, ImageMetric][] }[] {
    return [...this.at].sort(([a], [b]) => a - b).map(([step, s]) => ({ step, values: [...s.values], images: [...s.imgs] }));
  }

  /** A distribution (e.g. per-channel RMS of a layer) shown as a histogram. */
  recordHistogram(name: string, values: ArrayLike<number>): void {
    this.histos.set(name, values);
  }

  /** A PNG image (e.g. a layer x channel heatmap). */
  recordImage(name: string, image: ImageMetric): void {
    this.imgs.set(name, image);
  }

  get(name: string): number | undefined {
    return this.values.get(name);
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  /** This step's scalars, in recording order. */
  entries(): [string, number][] {
    return [...this.values];
  }

  histograms(): [string, ArrayLike<number>][] {
    return [...this.histos];
  }

  images(): [string, ImageMetric][] {
    return [...this.imgs];
  }

  clear(): void {
    this.values.clear();
    this.histos.clear();
    this.imgs.clear();
    this.at.clear();
  }
}
