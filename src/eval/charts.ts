/**
 * Small charts for evaluation reports, drawn as SVG and rendered to PNG by sharp (librsvg), so
 * reports need no browser and no canvas library.
 */
import sharp from 'sharp';

/** Ten distinguishable colours (Tableau 10), cycled for more classes. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export async function svgToPng(svg: string, file: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(file);
}

/** Confusion matrix as a heat map: rows = true class, columns = predicted; cells show counts. */
export function confusionSvg(confusion: number[][], classes: string[]): string {
  const n = classes.length;
  const cell = 44;
  const left = 120;
  const top = 110;
  const size = left + n * cell + 20;
  const rowTotals = confusion.map((r) => Math.max(1, r.reduce((a, b) => a + b, 0)));
  const cells = confusion.flatMap((row, i) =>
    row.map((v, j) => {
      const share = v / rowTotals[i];
      const fill = `rgb(${Math.round(255 - 200 * share)},${Math.round(255 - 140 * share)},${Math.round(255 - 60 * share)})`;
      const x = left + j * cell;
      const y = top + i * cell;
      return `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#fff"/><text x="${x + cell / 2}" y="${y + cell / 2 + 4}" font-size="11" text-anchor="middle" fill="${share > 0.6 ? '#fff' : '#222'}">${v}</text>`;
    }),
  );
  const rowLabels = classes.map((c, i) => `<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" font-size="11" text-anchor="end">${esc(c)}</text>`);
  const colLabels = classes.map(
    (c, j) => `<text transform="translate(${left + j * cell + cell / 2 + 4},${top - 6}) rotate(-50)" font-size="11">${esc(c)}</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${top + n * cell + 40}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="20" font-size="14" font-weight="bold">Confusion matrix (rows: true class, columns: predicted)</text>
${cells.join('\n')}
${rowLabels.join('\n')}
${colLabels.join('\n')}
</svg>`;
}

/** recall (0..1) against ef, with queries/s printed at each point. */
export function recallCurveSvg(points: Array<{ ef: number; recall: number; queriesPerSecond: number }>): string {
  const w = 560;
  const h = 320;
  const pad = { l: 60, r: 20, t: 40, b: 50 };
  const xs = points.map((p) => Math.log2(p.ef));
  const minX = Math.min(...xs);
  const maxX = Math.max(...xs, minX + 1);
  const minY = Math.min(0.5, ...points.map((p) => p.recall));
  const px = (ef: number) => pad.l + ((Math.log2(ef) - minX) / (maxX - minX)) * (w - pad.l - pad.r);
  const py = (r: number) => h - pad.b - ((r - minY) / (1 - minY)) * (h - pad.t - pad.b);
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(p.ef).toFixed(1)},${py(p.recall).toFixed(1)}`).join(' ');
  const dots = points.map(
    (p) =>
      `<circle cx="${px(p.ef)}" cy="${py(p.recall)}" r="4" fill="#4e79a7"/><text x="${px(p.ef)}" y="${py(p.recall) - 10}" font-size="10" text-anchor="middle">${p.recall.toFixed(3)} · ${p.queriesPerSecond}/s</text><text x="${px(p.ef)}" y="${h - pad.b + 18}" font-size="11" text-anchor="middle">${p.ef}</text>`,
  );
  const yTicks = [minY, (minY + 1) / 2, 1].map((r) => `<text x="${pad.l - 8}" y="${py(r) + 4}" font-size="11" text-anchor="end">${r.toFixed(2)}</text><line x1="${pad.l}" x2="${w - pad.r}" y1="${py(r)}" y2="${py(r)}" stroke="#eee"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="20" font-size="14" font-weight="bold">HNSW recall@10 against exact search, by ef (labels: recall · queries/s)</text>
${yTicks.join('\n')}
<path d="${line}" fill="none" stroke="#4e79a7" stroke-width="2"/>
${dots.join('\n')}
<text x="${w / 2}" y="${h - 10}" font-size="12" text-anchor="middle">ef (log scale)</text>
</svg>`;
}

/** 2-D map of embeddings, one dot per item, coloured by class, with a legend. */
export function scatterSvg(points: Array<[number, number]>, labels: ArrayLike<number>, classes: string[], title: string): string {
  const w = 720;
  const h = 620;
  const plot = { l: 20, t: 40, r: 170, b: 20 };
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => plot.l + ((x - x0) / (x1 - x0 || 1)) * (w - plot.l - plot.r);
  const sy = (y: number) => plot.t + ((y - y0) / (y1 - y0 || 1)) * (h - plot.t - plot.b);
  const dots = points.map((p, i) => `<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="2.2" fill="${PALETTE[labels[i] % PALETTE.length]}" fill-opacity="0.75"/>`);
  const legend = classes.map((c, i) => `<circle cx="${w - plot.r + 20}" cy="${plot.t + 10 + i * 20}" r="6" fill="${PALETTE[i % PALETTE.length]}"/><text x="${w - plot.r + 32}" y="${plot.t + 14 + i * 20}" font-size="12">${esc(c)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" font-size="14" font-weight="bold">${esc(title)}</text>
${dots.join('\n')}
${legend.join('\n')}
</svg>`;
}
