/** A one-line progress bar (TTY) or periodic lines (logs, CI): step, loss, tokens/s, ETA. */
export interface ProgressInfo {
  step: number;
  total: number;
  loss: number;
  tokensPerSec: number;
  etaSec: number;
  /** Model FLOPs utilisation 0..1, when the device's peak is known. */
  mfu?: number;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function formatProgress(p: ProgressInfo, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.step / p.total) : 1;
  const filled = Math.round(frac * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  return `[${bar}] step ${p.step}/${p.total} | loss ${p.loss.toFixed(4)} | ${Math.round(p.tokensPerSec).toLocaleString('en-US')} tok/s${p.mfu !== undefined ? ` | MFU ${(100 * p.mfu).toFixed(1)}%` : ''} | ETA ${formatDuration(p.etaSec)}`;
}

export class ProgressBar {
  private lastLine = 0;
  constructor(
    private readonly stream: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean },
  ) {}

  update(p: ProgressInfo): void {
    const line = formatProgress(p);
    if (this.stream.isTTY) {
      this.stream.write(`\r${line}\x1b[K`);
    } else {
      const now = Date.now();
      // Without a terminal, one line every 10 s and at the last step.
      if (now - this.lastLine >= 10_000 || p.step === p.total) {
        this.stream.write(line + '\n');
        this.lastLine = now;
      }
    }
  }

  /** Print a full line without breaking the bar. */
  log(s: string): void {
    this.stream.write(this.stream.isTTY ? `\r\x1b[K${s}\n` : s + '\n');
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}
