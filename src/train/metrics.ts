/**
 * Namespaced scalar metrics of one step ('train/loss', 'eval/loss', 'throughput/tokens_per_s').
 * Callbacks record; sinks read. Cleared by the trainer after every step.
 */
export class MetricsRecorder {
  private values = new Map<string, number>();

  record(name: string, value: number): void {
    this.values.set(name, value);
  }

  get(name: string): number | undefined {
    return this.values.get(name);
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  /** This step's metrics, in recording order. */
  entries(): [string, number][] {
    return [...this.values];
  }

  clear(): void {
    this.values.clear();
  }
}
