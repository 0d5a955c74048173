/**
 * Computes the table in src/metrics/gaussian_floor.ts: the expected OSP excess kurtosis (ospKurtosis)
 * of i.i.d. N(0, 1) activations at each width, by Monte Carlo in float64, in rounds of 50,000 tokens
 * until the standard error is below 0.1% of the value or 4M tokens are drawn (widths >= 128: 0.15%).
 *
 *   npx tsx scripts/gaussian-floor-table.ts [WIDTH ...]
 *
 * Prints one table line per width: `d: { value, stderr, tokens },`.
 */
import { floorMonteCarlo } from '../src/metrics/gaussian_floor.ts';

const widths = process.argv.slice(2).map(Number);
const list = widths.length > 0 ? widths : [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048];
for (const d of list) {
  const t0 = performance.now();
  const r = floorMonteCarlo(d, { seed: 0x05f100d + d, relStderr: d >= 128 ? 0.0015 : 0.001, maxTokens: 4_000_000 });
  console.log(
    `  ${d}: { value: ${r.value.toFixed(6)}, stderr: ${r.stderr.toExponential(2)}, tokens: ${r.tokens} }, ` +
      `// ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}
