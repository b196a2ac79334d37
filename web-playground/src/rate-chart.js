// Events per second over the last minute, drawn on a canvas (no chart library needed for bars).

export const CHART_SECONDS = 60;

/** Counts arrivals per whole second and forgets seconds that scrolled out of the chart. */
export class RateSeries {
  constructor() {
    this.perSecond = new Map();
  }

  add(atMillis) {
    const second = Math.floor(atMillis / 1000);
    this.perSecond.set(second, (this.perSecond.get(second) ?? 0) + 1);
  }

  /** The last CHART_SECONDS counts, oldest first, ending with the current second. */
  window(nowMillis) {
    const now = Math.floor(nowMillis / 1000);
    for (const second of this.perSecond.keys()) {
      if (second <= now - CHART_SECONDS) this.perSecond.delete(second);
    }
    return Array.from({ length: CHART_SECONDS }, (_, i) => this.perSecond.get(now - CHART_SECONDS + 1 + i) ?? 0);
  }
}

/** Draws `counts` as bars with a y-axis top label and a time axis. */
export function drawRateChart(canvas, counts) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const left = 34;
  const bottom = 18;
  const top = 8;
  const plotWidth = width - left - 4;
  const plotHeight = height - bottom - top;
  const peak = Math.max(1, ...counts);
  const scale = niceCeiling(peak);

  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.strokeStyle = "#d8dce3";
  g.lineWidth = 1;
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotHeight * (1 - fraction);
    g.beginPath();
    g.moveTo(left, Math.round(y) + 0.5);
    g.lineTo(left + plotWidth, Math.round(y) + 0.5);
    g.stroke();
    g.fillText(String(Math.round(scale * fraction * 10) / 10), left - 6, y);
  }
  g.textAlign = "left";
  g.textBaseline = "top";
  g.fillText(`−${CHART_SECONDS} s`, left, height - bottom + 4);
  g.textAlign = "right";
  g.fillText("now", left + plotWidth, height - bottom + 4);

  const slot = plotWidth / counts.length;
  g.fillStyle = "#3b6ef5";
  counts.forEach((count, i) => {
    if (count === 0) return;
    const barHeight = (count / scale) * plotHeight;
    g.fillRect(left + i * slot + 1, top + plotHeight - barHeight, Math.max(1, slot - 2), barHeight);
  });
}

/** 1, 2, 5, 10, 20, 50, … at or above `value`, so the axis reads in round numbers. */
function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}
