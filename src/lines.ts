/**
 * Turns chunks of text into whole lines, per source: a line split across two chunks waits
 * for its rest, so nothing downstream ever sees half a line. The one place plugforge
 * splits streamed output into lines (log routes, image-build progress).
 */
export class LineSplitter<K = string> {
  private readonly partial = new Map<K, string>();

  /** The lines `text` completes for `source`, without their "\n". */
  push(source: K, text: string): string[] {
    const lines = ((this.partial.get(source) ?? '') + text).split('\n');
    this.partial.set(source, lines.pop() ?? '');
    return lines;
  }

  /** What is left of each source's last line (sources with nothing left are skipped), and forgets it. */
  rest(): [K, string][] {
    const out = [...this.partial].filter(([, r]) => r !== '');
    this.partial.clear();
    return out;
  }
}

/** How a build log says, on a line of its own, that its cap (PLUGFORGE_MAX_LOG_LINES) dropped lines before what follows; every reader shows it. */
export const LOG_TRUNCATED = '[plugforge] log truncated:';
