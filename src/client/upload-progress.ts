import { formatBytes } from './summary-table.js';

/**
 * Progress of the upload on stderr. The archive is made while it is sent, so its size is
 * unknown up front; the bar measures the file bytes packed so far against the listing's
 * total, which the network's pace governs. On a terminal one line is redrawn in place; in
 * CI logs a line every 5 s at most; with --quiet nothing.
 */
export interface UploadProgress {
  start(files: number, totalBytes: number): void;
  /** File bytes packed so far; compressed bytes sent so far. */
  update(packedBytes: number, sentBytes: number): void;
  done(sentBytes: number): void;
  /** Ends the line on a terminal before anything else is written. */
  stop(): void;
}

export function createUploadProgress(stream: NodeJS.WriteStream, options: { quiet?: boolean } = {}): UploadProgress {
  if (options.quiet) return { start() {}, update() {}, done() {}, stop() {} };
  let total = 0;
  let started = 0;
  let last = 0;
  let drawn = false;
  const seconds = () => ((Date.now() - started) / 1000).toFixed(1);

  if (!stream.isTTY) {
    return {
      start(files, totalBytes) {
        total = totalBytes;
        started = last = Date.now();
        stream.write(`uploading ${files} file(s), ${formatBytes(totalBytes)}\n`);
      },
      update(packed, sent) {
        const now = Date.now();
        if (now - last < 5000) return;
        last = now;
        stream.write(`uploading: ${percent(packed, total)}% packed, ${formatBytes(sent)} sent (${seconds()} s)\n`);
      },
      done(sent) {
        stream.write(`uploaded ${formatBytes(sent)} (gzip) in ${seconds()} s\n`);
      },
      stop() {},
    };
  }

  const draw = (packed: number, sent: number, force = false) => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const width = 30;
    const p = percent(packed, total);
    const filled = Math.round((p / 100) * width);
    stream.write(
      `\r\x1b[2Kuploading [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(p).padStart(3)}%  ${formatBytes(packed)}/${formatBytes(total)}  ${formatBytes(sent)} sent`,
    );
    drawn = true;
  };
  return {
    start(files, totalBytes) {
      total = totalBytes;
      started = Date.now();
      stream.write(`uploading ${files} file(s), ${formatBytes(totalBytes)}\n`);
      draw(0, 0, true);
    },
    update(packed, sent) {
      draw(packed, sent);
    },
    done(sent) {
      draw(total, sent, true);
      stream.write(`\r\x1b[2Kuploaded ${formatBytes(sent)} (gzip) in ${seconds()} s\n`);
      drawn = false;
    },
    stop() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

function percent(part: number, total: number): number {
  return total > 0 ? Math.min(100, Math.floor((part / total) * 100)) : 100;
}
