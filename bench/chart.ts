// A self-made grouped bar chart as SVG (no dependencies): one group per category, one bar per series.

export interface BarChart {
  title: string;
  /** Unit shown on the axis, e.g. "MB/s". */
  unit: string;
  categories: string[];
  series: string[];
  /** values[series][category]; NaN or undefined leaves a gap. */
  values: (number | undefined)[][];
}

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);
}

/** Axis maximum rounded up to 1, 2 or 5 × a power of ten. */
function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  return ([1, 2, 5, 10].find((m) => m * p >= value) as number) * p;
}

export function barChartSvg(chart: BarChart): string {
  const bar = 18, gap = 28, left = 70, top = 40, plotHeight = 300, legendWidth = 260;
  const groupWidth = chart.series.length * bar + gap;
  const width = left + chart.categories.length * groupWidth + legendWidth;
  const height = top + plotHeight + 60;
  const max = niceMax(Math.max(0, ...chart.values.flat().filter((v): v is number => Number.isFinite(v))));
  const y = (v: number): number => top + plotHeight - (v / max) * plotHeight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${escape(chart.title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    parts.push(`<line x1="${left}" x2="${width - legendWidth}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`);
  }
  parts.push(`<text x="14" y="${top + plotHeight / 2}" transform="rotate(-90 14 ${top + plotHeight / 2})" text-anchor="middle">${escape(chart.unit)}</text>`);
  chart.categories.forEach((category, c) => {
    const x0 = left + gap / 2 + c * groupWidth;
    chart.series.forEach((_, s) => {
      const v = chart.values[s]?.[c];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = x0 + s * bar;
      parts.push(`<rect x="${x}" y="${y(v)}" width="${bar - 2}" height="${top + plotHeight - y(v)}" fill="${PALETTE[s % PALETTE.length]}"><title>${escape(`${chart.series[s]} / ${category}: ${v} ${chart.unit}`)}</title></rect>`,
        `<text x="${x + bar / 2 - 1}" y="${y(v) - 3}" text-anchor="middle" font-size="8">${Math.round(v)}</text>`);
    });
    parts.push(`<text x="${x0 + (chart.series.length * bar) / 2}" y="${top + plotHeight + 16}" text-anchor="middle">${escape(category)}</text>`);
  });
  chart.series.forEach((name, s) => {
    const ly = top + s * 16;
    const lx = width - legendWidth + 16;
    parts.push(`<rect x="${lx}" y="${ly}" width="10" height="10" fill="${PALETTE[s % PALETTE.length]}"/>`,
      `<text x="${lx + 16}" y="${ly + 9}">${escape(name)}</text>`);
  });
  parts.push(`<line x1="${left}" x2="${width - legendWidth}" y1="${top + plotHeight}" y2="${top + plotHeight}" stroke="#333"/>`, "</svg>");
  return parts.join("\n") + "\n";
}
