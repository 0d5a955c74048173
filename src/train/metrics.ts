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

  record(name: string, value: number): void {
    this.values.set(name, value);
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
  }
}
