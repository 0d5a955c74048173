import { describe, expect, it } from 'vitest';
import { barChart, escapeXml, formatValue, lineChart } from '../../src/sweep/svg.ts';

// ---------------------------------------------------------------------------------------------------
// A small, strict XML parser: the oracle that the output is well-formed (every tag closed, no raw '<'
// or stray '&' in text or attribute values) and that escaped text decodes back to the original.

interface El {
  name: string;
  attrs: Record<string, string>;
  children: El[];
  text: string;
}

const ENTITY = /&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g;
const BAD_AMP = /&(?!(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/;

function decode(s: string): string {
  if (BAD_AMP.test(s)) throw new Error(`unescaped '&' in ${JSON.stringify(s)}`);
  return s.replace(ENTITY, (_, e: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (e in named) return named[e]!;
    return String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

function parseXml(src: string): El {
  const token = /<\/([A-Za-z][\w:.-]*)\s*>|<([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|([^<]+)/y;
  const attr = /([\w:.-]+)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/g;
  const root: El = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: El[] = [root];
  token.lastIndex = 0;
  while (token.lastIndex < src.length) {
    const at = token.lastIndex;
    const m = token.exec(src);
    if (!m) throw new Error(`not well-formed at offset ${at}: ${JSON.stringify(src.slice(at, at + 40))}`);
    const top = stack[stack.length - 1]!;
    if (m[1] !== undefined) {
      if (top.name !== m[1]) throw new Error(`</${m[1]}> closes <${top.name}>`);
      stack.pop();
    } else if (m[2] !== undefined) {
      const el: El = { name: m[2], attrs: {}, children: [], text: '' };
      for (const a of m[3]!.matchAll(attr)) {
        if (a[1]! in el.attrs) throw new Error(`duplicate attribute ${a[1]}`);
        el.attrs[a[1]!] = decode(a[2] ?? a[3]!);
      }
      top.children.push(el);
      if (m[4] !== '/') stack.push(el);
    } else {
      top.text += decode(m[5]!);
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const elements = root.children;
  if (elements.length !== 1 || root.text.trim() !== '') throw new Error('expected exactly one root element');
  return elements[0]!;
}

function all(el: El, pred: (e: El) => boolean, out: El[] = []): El[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) all(c, pred, out);
  return out;
}

const hasClass = (cls: string) => (e: El) => (e.attrs.class ?? '').split(/\s+/).includes(cls);

function textOf(el: El): string {
  return el.text + el.children.map(textOf).join('');
}

function viewBox(svg: El): [number, number, number, number] {
  const v = svg.attrs.viewBox!.split(/\s+/).map(Number);
  expect(v).toHaveLength(4);
  return v as [number, number, number, number];
}

function polylinePoints(el: El): [number, number][] {
  return el.attrs
    .points!.trim()
    .split(/\s+/)
    .map((p) => {
      const [x, y] = p.split(',').map(Number);
      return [x!, y!];
    });
}

function expectInside(svg: El, x: number, y: number): void {
  const [vx, vy, vw, vh] = viewBox(svg);
  expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true);
  expect(x).toBeGreaterThanOrEqual(vx);
  expect(x).toBeLessThanOrEqual(vx + vw);
  expect(y).toBeGreaterThanOrEqual(vy);
  expect(y).toBeLessThanOrEqual(vy + vh);
}

/** y pixel of each y tick, from its grid line. */
function yTicks(svg: El): { value: number; y: number; label: string }[] {
  return all(svg, (e) => hasClass('tick')(e) && hasClass('y')(e)).map((g) => ({
    value: Number(g.attrs['data-value']),
    y: Number(g.children.find((c) => c.name === 'line')!.attrs.y1),
    label: textOf(g.children.find((c) => c.name === 'text')!),
  }));
}

// ---------------------------------------------------------------------------------------------------

/** A one-series line chart ('a') on a log y axis, with optional reference lines. */
function logLine(points: [number, number][], hLines?: { y: number; label: string }[]): string {
  return lineChart({ title: 't', xLabel: 'x', yLabel: 'y', logY: true, series: [{ name: 'a', points }], ...(hLines ? { hLines } : {}) });
}

describe('lineChart', () => {
  const series = [
    {
      name: 'adam',
      points: [
        [0, 5],
        [10, 4],
        [20, 3.5],
        [30, 3.1],
      ] as [number, number][],
    },
    {
      name: 'muon',
      points: [
        [0, 5.2],
        [10, 3.9],
        [20, 3.2],
        [30, 2.9],
      ] as [number, number][],
    },
    {
      name: 'osp',
      points: [
        [0, 5.1],
        [10, 3.8],
        [20, 3.0],
        [30, 2.7],
      ] as [number, number][],
    },
  ];

  it('draws one polyline per series, with distinct colours, finite coordinates inside the viewBox, and a legend', () => {
    const svg = parseXml(lineChart({ title: 'Loss', xLabel: 'step', yLabel: 'loss', series }));
    expect(svg.name).toBe('svg');
    expect(svg.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    const lines = all(svg, hasClass('series'));
    expect(lines.map((l) => l.name)).toEqual(['polyline', 'polyline', 'polyline']);
    expect(lines.map((l) => l.attrs['data-name'])).toEqual(['adam', 'muon', 'osp']);
    expect(new Set(lines.map((l) => l.attrs.stroke)).size).toBe(3);
    for (const l of lines) {
      const pts = polylinePoints(l);
      expect(pts).toHaveLength(4);
      for (const [x, y] of pts) expectInside(svg, x, y);
    }
    const legend = all(svg, hasClass('legend-entry'));
    expect(legend.map((g) => g.attrs['data-name'])).toEqual(['adam', 'muon', 'osp']);
    // Legend swatches carry the series' colours, in order.
    expect(legend.map((g) => g.children.find((c) => c.name === 'line')!.attrs.stroke)).toEqual(lines.map((l) => l.attrs.stroke));
    expect(textOf(all(svg, hasClass('title'))[0]!)).toBe('Loss');
    expect(textOf(all(svg, (e) => hasClass('axis-label')(e) && hasClass('x')(e))[0]!)).toBe('step');
    expect(textOf(all(svg, (e) => hasClass('axis-label')(e) && hasClass('y')(e))[0]!)).toBe('loss');
  });

  it('maps data linearly: pixel positions are affine in the data, larger y drawn higher, ticks cover the data', () => {
    const svg = parseXml(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [series[0]!] }));
    const pts = polylinePoints(all(svg, hasClass('series'))[0]!);
    const data = series[0]!.points;
    const sx = (pts[3]![0] - pts[0]![0]) / (data[3]![0] - data[0]![0]);
    const sy = (pts[3]![1] - pts[0]![1]) / (data[3]![1] - data[0]![1]);
    expect(sx).toBeGreaterThan(0);
    expect(sy).toBeLessThan(0); // SVG y grows downwards
    for (let i = 0; i < 4; i++) {
      expect(pts[i]![0]).toBeCloseTo(pts[0]![0] + sx * (data[i]![0] - data[0]![0]), 1);
      expect(pts[i]![1]).toBeCloseTo(pts[0]![1] + sy * (data[i]![1] - data[0]![1]), 1);
    }
    // Tick grid lines sit on the same affine map.
    const ticks = yTicks(svg);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const t of ticks) expect(t.y).toBeCloseTo(pts[0]![1] + sy * (t.value - data[0]![1]), 1);
    expect(Math.min(...ticks.map((t) => t.value))).toBeLessThanOrEqual(3.1);
    expect(Math.max(...ticks.map((t) => t.value))).toBeGreaterThanOrEqual(5);
    // Tick labels are the values, with no floating-point noise.
    for (const t of ticks) expect(Number(t.label)).toBeCloseTo(t.value, 10);
    for (const t of ticks) expect(t.label.length).toBeLessThan(8);
  });

  it('skips non-finite points', () => {
    const svg = parseXml(
      lineChart({
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        series: [
          {
            name: 'a',
            points: [
              [0, 1],
              [1, NaN],
              [2, Infinity],
              [NaN, 3],
              [4, -Infinity],
              [5, 2],
            ],
          },
        ],
      }),
    );
    const pts = polylinePoints(all(svg, hasClass('series'))[0]!);
    expect(pts).toHaveLength(2);
    for (const [x, y] of pts) expectInside(svg, x, y);
  });

  it('log scale: ticks at powers of ten, decades equally spaced, non-positive values skipped', () => {
    const svg = parseXml(
      lineChart({
        title: 'kurtosis',
        xLabel: 'step',
        yLabel: 'k',
        logY: true,
        series: [
          {
            name: 'a',
            points: [
              [0, 0.05],
              [1, 1],
              [2, 10],
              [3, 100],
              [4, 0],
              [5, -3],
              [6, 1500],
            ],
          },
        ],
      }),
    );
    const pts = polylinePoints(all(svg, hasClass('series'))[0]!);
    expect(pts).toHaveLength(5); // 0 and -3 skipped
    // y = 1, 10, 100 are one decade apart: equal pixel steps.
    expect(pts[2]![1] - pts[1]![1]).toBeCloseTo(pts[3]![1] - pts[2]![1], 1);
    expect(pts[3]![1]).toBeLessThan(pts[2]![1]);
    const ticks = yTicks(svg);
    for (const t of ticks) expect(Math.abs(Math.log10(t.value) - Math.round(Math.log10(t.value)))).toBeLessThan(1e-12);
    expect(ticks.map((t) => t.value)).toEqual([0.01, 0.1, 1, 10, 100, 1000, 10000]);
    expect(ticks.map((t) => t.label)).toEqual(['0.01', '0.1', '1', '10', '100', '1000', '10000']);
    // The tick at 10 is level with the data point at 10.
    expect(ticks.find((t) => t.value === 10)!.y).toBeCloseTo(pts[2]![1], 1);
    for (const [x, y] of pts) expectInside(svg, x, y);
  });

  it('log scale over many decades keeps ticks on powers of ten (every n-th decade)', () => {
    const svg = parseXml(
      logLine([
        [0, 1e-8],
        [1, 1e12],
      ]),
    );
    const ticks = yTicks(svg);
    expect(ticks.length).toBeLessThanOrEqual(11);
    expect(ticks.length).toBeGreaterThanOrEqual(5);
    for (const t of ticks) expect(Number.isInteger(Math.round(Math.log10(t.value) * 1e9) / 1e9)).toBe(true);
    expect(ticks[0]!.value).toBeLessThanOrEqual(1e-8);
    expect(ticks.at(-1)!.value).toBeGreaterThanOrEqual(1e12);
  });

  it('draws horizontal reference lines inside the plot, including them in the y range', () => {
    const svg = parseXml(
      logLine(
        [
          [0, 5],
          [1, 50],
        ],
        [
          { y: 0.138, label: 'Gaussian floor' },
          { y: 0, label: 'invisible on a log axis' },
        ],
      ),
    );
    const h = all(svg, hasClass('hline'));
    expect(h).toHaveLength(1);
    expect(Number(h[0]!.attrs['data-y'])).toBe(0.138);
    expect(h[0]!.attrs.y1).toBe(h[0]!.attrs.y2);
    expectInside(svg, Number(h[0]!.attrs.x1), Number(h[0]!.attrs.y1));
    expect(all(svg, hasClass('hline-label')).map(textOf)).toEqual(['Gaussian floor']);
    // The floor (0.138) is below every data point and on the chart: the axis reaches down to 0.1.
    expect(Math.min(...yTicks(svg).map((t) => t.value))).toBe(0.1);
    const pts = polylinePoints(all(svg, hasClass('series'))[0]!);
    expect(Number(h[0]!.attrs.y1)).toBeGreaterThan(pts[0]![1]);
  });

  it('escapes text: names, title and labels round-trip through an XML parser', () => {
    const nasty = `a<b&c "q" 'x' >`;
    const out = lineChart({
      title: `T & <T>`,
      xLabel: 'x<1',
      yLabel: `"y"`,
      series: [
        {
          name: nasty,
          points: [
            [0, 1],
            [1, 2],
          ],
        },
      ],
      hLines: [{ y: 1.5, label: 'm&m' }],
    });
    expect(out).not.toContain('a<b');
    expect(out).toContain('a&lt;b&amp;c');
    const svg = parseXml(out);
    expect(all(svg, hasClass('series'))[0]!.attrs['data-name']).toBe(nasty);
    expect(all(svg, hasClass('legend-entry'))[0]!.attrs['data-name']).toBe(nasty);
    expect(textOf(all(svg, hasClass('title'))[0]!)).toBe('T & <T>');
    expect(textOf(all(svg, hasClass('hline-label'))[0]!)).toBe('m&m');
    expect(all(svg, (e) => e.name === 'title')[0]!.text).toBe('T & <T>');
  });

  it('replaces characters XML forbids', () => {
    const svg = parseXml(lineChart({ title: 'a\u0001b', xLabel: 'x', yLabel: 'y', series: [{ name: 'n\u0000', points: [[0, 1]] }] }));
    expect(textOf(all(svg, hasClass('title'))[0]!)).toBe('a\uFFFDb');
  });

  it('handles no data, a single point and a constant series', () => {
    const empty = parseXml(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] }));
    expect(all(empty, hasClass('series'))).toHaveLength(0);
    expect(all(empty, hasClass('no-data'))).toHaveLength(1);

    const one = parseXml(
      lineChart({
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        series: [
          { name: 'single', points: [[7, 3]] },
          {
            name: 'flat',
            points: [
              [0, 2],
              [1, 2],
              [2, 2],
            ],
          },
          { name: 'nothing', points: [[0, NaN]] },
        ],
      }),
    );
    const lines = all(one, hasClass('series'));
    expect(lines.map((l) => l.attrs['data-name'])).toEqual(['single', 'flat']);
    for (const l of lines) for (const [x, y] of polylinePoints(l)) expectInside(one, x, y);
    // A single point draws no line segment: it gets a marker.
    expect(all(one, (e) => hasClass('markers')(e) && e.attrs['data-name'] === 'single')[0]!.children).toHaveLength(1);
    // The series without drawable points is still named in the legend.
    const legend = all(one, hasClass('legend-entry'));
    expect(legend.map((g) => g.attrs['data-name'])).toEqual(['single', 'flat', 'nothing']);
    expect(textOf(legend[2]!)).toContain('no data');
  });

  it('gives many series distinct colours and grows to fit the legend', () => {
    const many = Array.from({ length: 30 }, (_, i) => ({
      name: `trial-${i}`,
      points: [
        [0, i],
        [1, i + 1],
      ] as [number, number][],
    }));
    const svg = parseXml(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: many, height: 200 }));
    const lines = all(svg, hasClass('series'));
    expect(lines).toHaveLength(30);
    expect(new Set(lines.map((l) => l.attrs.stroke)).size).toBe(30);
    const [, , , vh] = viewBox(svg);
    for (const g of all(svg, hasClass('legend-entry'))) {
      const t = g.children.find((c) => c.name === 'text')!;
      expect(Number(t.attrs.y)).toBeLessThanOrEqual(vh);
    }
    for (const l of lines) for (const [x, y] of polylinePoints(l)) expectInside(svg, x, y);
  });
});

describe('barChart', () => {
  it('draws one rect per bar with heights proportional to the values on a linear axis', () => {
    const bars = [
      { label: 'a', value: 2 },
      { label: 'b', value: 5 },
      { label: 'c', value: 0.5 },
    ];
    const svg = parseXml(barChart({ title: 't', yLabel: 'ratio', bars }));
    const rects = all(svg, hasClass('bar'));
    expect(rects.map((r) => r.name)).toEqual(['rect', 'rect', 'rect']);
    expect(rects.map((r) => r.attrs['data-label'])).toEqual(['a', 'b', 'c']);
    expect(rects.map((r) => Number(r.attrs['data-value']))).toEqual([2, 5, 0.5]);
    const h = rects.map((r) => Number(r.attrs.height));
    expect(h[1]! / h[0]!).toBeCloseTo(2.5, 2);
    expect(h[2]! / h[0]!).toBeCloseTo(0.25, 2);
    // All bars stand on the same base line (zero).
    const bottoms = rects.map((r) => Number(r.attrs.y) + Number(r.attrs.height));
    for (const b of bottoms) expect(b).toBeCloseTo(bottoms[0]!, 1);
    for (const r of rects) {
      expectInside(svg, Number(r.attrs.x), Number(r.attrs.y));
      expectInside(svg, Number(r.attrs.x) + Number(r.attrs.width), Number(r.attrs.y) + Number(r.attrs.height));
    }
    expect(all(svg, hasClass('bar-label')).map(textOf)).toEqual(['a', 'b', 'c']);
    expect(yTicks(svg)[0]!.value).toBe(0);
  });

  it('log axis: bar tops at log positions, ticks at powers of ten, non-positive values marked n/a', () => {
    const svg = parseXml(
      barChart({
        title: 'gap',
        yLabel: 'ratio',
        logY: true,
        bars: [
          { label: 'adam', value: 10000 },
          { label: 'osp', value: 1.5 },
          { label: 'broken', value: 0 },
          { label: 'nan', value: NaN },
          { label: 'muon', value: 100 },
        ],
        hLines: [{ y: 1, label: 'no gap' }],
      }),
    );
    const rects = all(svg, hasClass('bar'));
    expect(rects.map((r) => r.attrs['data-label'])).toEqual(['adam', 'osp', 'muon']);
    expect(all(svg, hasClass('bar-missing')).map((e) => e.attrs['data-label'])).toEqual(['broken', 'nan']);
    const ticks = yTicks(svg);
    for (const t of ticks) expect(Math.log10(t.value)).toBeCloseTo(Math.round(Math.log10(t.value)), 12);
    const yOf = (v: number) => ticks.find((t) => t.value === v)!.y;
    const top = (label: string) => Number(rects.find((r) => r.attrs['data-label'] === label)!.attrs.y);
    expect(top('adam')).toBeCloseTo(yOf(10000), 1);
    expect(top('muon')).toBeCloseTo(yOf(100), 1);
    // 1.5 sits log10(1.5) of a decade above 1.
    expect(top('osp')).toBeCloseTo(yOf(1) + Math.log10(1.5) * (yOf(10) - yOf(1)), 1);
    // The 'no gap' line at 1 is drawn and the osp bar (1.5) is visible above the axis bottom.
    expect(Number(all(svg, hasClass('hline'))[0]!.attrs['data-y'])).toBe(1);
    expect(Number(rects[1]!.attrs.height)).toBeGreaterThan(1);
  });

  it('escapes labels and rotates long ones while keeping them in the picture', () => {
    const long = 'optimizer.muon.lr=0.01,model.norm=ssnorm <&>';
    const svg = parseXml(
      barChart({
        title: 't',
        yLabel: 'y',
        bars: Array.from({ length: 8 }, (_, i) => ({ label: `${long}-${i}`, value: i + 1 })),
      }),
    );
    const rects = all(svg, hasClass('bar'));
    expect(rects[0]!.attrs['data-label']).toBe(`${long}-0`);
    const labels = all(svg, hasClass('bar-label'));
    expect(labels.every((l) => (l.attrs.transform ?? '').startsWith('rotate('))).toBe(true);
    for (const r of rects) expectInside(svg, Number(r.attrs.x), Number(r.attrs.y) + Number(r.attrs.height));
  });

  it('shows an empty chart as "no data"', () => {
    const svg = parseXml(barChart({ title: 't', yLabel: 'y', bars: [], logY: true }));
    expect(all(svg, hasClass('bar'))).toHaveLength(0);
    expect(all(svg, hasClass('no-data'))).toHaveLength(1);
  });
});

describe('bands and error bars (multi-seed sweeps)', () => {
  const mean: [number, number][] = [
    [0, 5],
    [10, 4],
    [20, 3.5],
    [30, 3],
  ];
  const band: [number, number, number][] = mean.map(([x, y], i) => [x, y - 0.5 + i * 0.1, y + 0.5 - i * 0.1]);

  it('a band is one polygon under its line, in its colour, upper edge then lower edge back, inside the plot', () => {
    const text = lineChart({
      title: 't',
      xLabel: 'step',
      yLabel: 'loss',
      series: [
        { name: 'adam', points: mean, band },
        { name: 'osp', points: mean.map(([x, y]) => [x, y - 1] as [number, number]) },
      ],
      caption: 'band: mean -+ one standard deviation',
    });
    const svg = parseXml(text);
    const polys = all(svg, hasClass('band'));
    expect(polys).toHaveLength(1);
    expect(polys[0]!.name).toBe('polygon');
    expect(polys[0]!.attrs['data-name']).toBe('adam');
    const line = all(svg, hasClass('series')).find((l) => l.attrs['data-name'] === 'adam')!;
    expect(polys[0]!.attrs.fill).toBe(line.attrs.stroke);
    expect(Number(polys[0]!.attrs['fill-opacity'])).toBeLessThan(0.5);
    const pts = polylinePoints(polys[0]!);
    expect(pts).toHaveLength(2 * band.length);
    const linePts = polylinePoints(line);
    for (let i = 0; i < band.length; i++) {
      const upper = pts[i]!;
      const lower = pts[pts.length - 1 - i]!;
      expect(upper[0]).toBeCloseTo(linePts[i]![0], 6);
      expect(lower[0]).toBeCloseTo(linePts[i]![0], 6);
      expect(upper[1]).toBeLessThan(linePts[i]![1]);
      expect(lower[1]).toBeGreaterThan(linePts[i]![1]);
    }
    for (const [x, y] of pts) expectInside(svg, x, y);
    // The band widens the y axis: its extremes are inside the ticks.
    const ticks = yTicks(svg).map((t) => t.value);
    expect(Math.min(...ticks)).toBeLessThanOrEqual(1.5);
    expect(Math.max(...ticks)).toBeGreaterThanOrEqual(5.5);
    // Drawn before every line; the legend swatch of a banded series has the band behind it.
    expect(text.indexOf('class="band"')).toBeLessThan(text.indexOf('class="series"'));
    const legend = all(svg, hasClass('legend-entry'));
    expect(legend[0]!.children.some((c) => c.name === 'rect')).toBe(true);
    expect(legend[1]!.children.some((c) => c.name === 'rect')).toBe(false);
    expect(textOf(all(svg, hasClass('caption'))[0]!)).toBe('band: mean -+ one standard deviation');
  });

  it('an empty band draws exactly what no band draws; a log axis clips a band below zero at its bottom', () => {
    const plain = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: mean }] });
    expect(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: mean, band: [] }] })).toBe(plain);
    const svg = parseXml(
      lineChart({
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        yScale: 'log',
        series: [
          {
            name: 'a',
            points: [
              [0, 0.2],
              [10, 40],
            ],
            band: [
              [0, -0.5, 0.9],
              [10, 20, 60],
            ],
          },
        ],
      }),
    );
    const pts = polylinePoints(all(svg, hasClass('band'))[0]!);
    expect(pts).toHaveLength(4);
    for (const [x, y] of pts) expectInside(svg, x, y);
    const bottom = Math.max(...yTicks(svg).map((t) => t.y));
    expect(pts[3]![1]).toBeCloseTo(bottom, 1);
  });

  it('error bars span their interval on the value axis, with the value written above them', () => {
    const svg = parseXml(
      barChart({
        title: 'gap',
        yLabel: 'ratio',
        base: 1,
        bars: [
          { label: 'adam', value: 1.04, err: [1.015, 1.065] },
          { label: 'osp', value: 1.15, err: [0.99, 1.31] },
          { label: 'one seed', value: 1.1 },
        ],
        caption: 'error bar: 95% confidence interval',
      }),
    );
    const errs = all(svg, hasClass('error-bar'));
    expect(errs.map((e) => e.attrs['data-label'])).toEqual(['adam', 'osp']);
    expect(errs.map((e) => [Number(e.attrs['data-lo']), Number(e.attrs['data-hi'])])).toEqual([
      [1.015, 1.065],
      [0.99, 1.31],
    ]);
    const ticks = yTicks(svg);
    // Pixel y is affine in the value: find it from two ticks.
    const [t0, t1] = [ticks[0]!, ticks.at(-1)!];
    const yOf = (v: number) => t0.y + ((v - t0.value) * (t1.y - t0.y)) / (t1.value - t0.value);
    const vertical = errs[1]!.children[0]!;
    expect(Number(vertical.attrs.y1)).toBeCloseTo(yOf(0.99), 1);
    expect(Number(vertical.attrs.y2)).toBeCloseTo(yOf(1.31), 1);
    expect(Math.min(...ticks.map((t) => t.value))).toBeLessThanOrEqual(0.99);
    expect(Math.max(...ticks.map((t) => t.value))).toBeGreaterThanOrEqual(1.31);
    const values = all(svg, hasClass('bar-value'));
    expect(Number(values[1]!.attrs.y)).toBeLessThan(yOf(1.31));
    expect(textOf(all(svg, hasClass('caption'))[0]!)).toBe('error bar: 95% confidence interval');
  });
});

describe('helpers', () => {
  it('escapeXml escapes the five XML specials', () => {
    expect(escapeXml(`a<b&c>"d"'e'`)).toBe('a&lt;b&amp;c&gt;&quot;d&quot;&#39;e&#39;');
  });

  it('formatValue keeps 4 significant digits and switches to exponents for extremes', () => {
    expect(formatValue(1818.56)).toBe('1819');
    expect(formatValue(0.04)).toBe('0.04');
    expect(formatValue(11.4)).toBe('11.4');
    expect(formatValue(80000)).toBe('8e+4');
    expect(formatValue(123456)).toBe('1.23e+5');
    expect(formatValue(0.0001)).toBe('1e-4');
    expect(formatValue(0)).toBe('0');
    expect(formatValue(-2.5)).toBe('-2.5');
  });
});
