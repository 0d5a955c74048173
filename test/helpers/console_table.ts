/** The console table's blocks read back: header -> the cells under it, by the dashes' positions. */
export function consoleColumns(lines: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 1; i < lines.length; i++) {
    if (!/^-+( +-+)*$/.test(lines[i]!)) continue;
    const header = lines[i - 1]!;
    const rows: string[] = [];
    for (let j = i + 1; j < lines.length && lines[j] !== ''; j++) rows.push(lines[j]!);
    for (const m of lines[i]!.matchAll(/-+/g)) {
      const [from, to] = [m.index!, m.index! + m[0].length];
      out.set(
        header.slice(from, to).trim(),
        rows.map((r) => r.slice(from, to).trim()),
      );
    }
  }
  return out;
}
