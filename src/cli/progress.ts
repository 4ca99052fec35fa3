// Progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain
// line every few seconds otherwise (logs, pipes, CI).

export interface Progress {
  update(done: number, extra?: string): void;
  finish(extra?: string): void;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(label: string, total: number, unit = 'tok', stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = performance.now();
  const tty = stream.isTTY === true;
  let lastPrint = started;
  const line = (done: number, extra?: string) => {
    const seconds = (performance.now() - started) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const eta = total > done ? (total - done) / rate : 0;
    const pct = total > 0 ? (100 * done) / total : 100;
    const width = 24;
    const filled = Math.round((width * Math.min(done, total)) / Math.max(total, 1));
    const bar = tty ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
    const tail = extra ? `  ${extra}` : '';
    return `${label} ${bar}${pct.toFixed(0)}% ${done}/${total} ${unit}  ${rate.toFixed(1)} ${unit}/s  ETA ${formatSeconds(eta)}${tail}`;
  };
  return {
    update(done, extra) {
      const now = performance.now();
      if (tty) {
        if (now - lastPrint < 100) return;
        stream.write(`\r${line(done, extra)}\x1b[K`);
      } else {
        if (now - lastPrint < 5000) return;
        stream.write(line(done, extra) + '\n');
      }
      lastPrint = now;
    },
    finish(extra) {
      const seconds = (performance.now() - started) / 1000;
      const text = `${label} done: ${total} ${unit} in ${formatSeconds(seconds)} (${(total / Math.max(seconds, 1e-9)).toFixed(1)} ${unit}/s)${extra ? `  ${extra}` : ''}`;
      stream.write(tty ? `\r${text}\x1b[K\n` : text + '\n');
    },
  };
}
