/** The live loss chart: train (every step) and validation (every eval) losses on a 2-D canvas. */
export interface Series {
  label: string;
  color: string;
  points: { step: number; loss: number }[];
}

/** Draw the series; returns how many pixels differ from the background (the test's "it drew"). */
export function drawChart(
  canvas: HTMLCanvasElement,
  series: readonly Series[],
  steps: number,
): number {
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  const { width: w, height: h } = canvas;
  const pad = 32;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  const all = series.flatMap((s) => s.points.map((p) => p.loss)).filter(Number.isFinite);
  if (all.length === 0) return 0;
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  const span = hi - lo || 1;
  const x = (step: number): number => pad + ((w - 2 * pad) * step) / Math.max(steps, 1);
  const y = (loss: number): number => h - pad - ((h - 2 * pad) * (loss - lo)) / span;
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad, pad, w - 2 * pad, h - 2 * pad);
  ctx.fillStyle = '#333';
  ctx.font = '11px sans-serif';
  ctx.fillText(hi.toFixed(3), 2, pad + 4);
  ctx.fillText(lo.toFixed(3), 2, h - pad);
  ctx.fillText(`step ${steps}`, w - pad - 40, h - pad + 14);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach((p, i) =>
      i === 0 ? ctx.moveTo(x(p.step), y(p.loss)) : ctx.lineTo(x(p.step), y(p.loss)),
    );
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, pad + 8 + 80 * k, pad - 8);
  });
  const px = ctx.getImageData(0, 0, w, h).data;
  let drawn = 0;
  for (let i = 0; i < px.length; i += 4)
    if (px[i] !== 255 || px[i + 1] !== 255 || px[i + 2] !== 255) drawn++;
  return drawn;
}
