/**
 * Progress of several long tasks that run side by side (image builds take tens of
 * seconds each). On a terminal: one line per task, redrawn in place with the elapsed
 * time. Otherwise (CI logs): plain lines, one per step, each prefixed with its task.
 */
export interface Progress {
  /** A task's current step, e.g. "Step 4/8 : RUN apt-get …". */
  update(task: string, message: string): void;
  /** A line worth keeping in any case (warnings, results). */
  log(task: string, message: string): void;
  done(task: string, message: string): void;
  fail(task: string, message: string): void;
  close(): void;
}

interface TaskLine {
  task: string;
  message: string;
  printed?: number;
  started: number;
  finished?: number;
  mark: string;
}

function elapsed(line: TaskLine): string {
  return `${Math.round(((line.finished ?? Date.now()) - line.started) / 1000)}s`;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr, options: { quiet?: boolean } = {}): Progress {
  if (options.quiet) return { update() {}, log() {}, done() {}, fail() {}, close() {} };
  const lines = new Map<string, TaskLine>();
  const touch = (task: string): TaskLine => {
    let line = lines.get(task);
    if (!line) {
      line = { task, message: '', started: Date.now(), mark: ' ' };
      lines.set(task, line);
    }
    return line;
  };

  if (!stream.isTTY) {
    return {
      update(task, message) {
        // CI logs get each step, and the chatter within a step at most every 10 s.
        const line = touch(task);
        line.message = message;
        const now = Date.now();
        if (!message.startsWith('Step ') && line.printed !== undefined && now - line.printed < 10_000) return;
        line.printed = now;
        stream.write(`[${task}] ${message} (${elapsed(line)})\n`);
      },
      log(task, message) {
        stream.write(`[${task}] ${message}\n`);
      },
      done(task, message) {
        const line = touch(task);
        line.finished = Date.now();
        stream.write(`[${task}] done: ${message} (${elapsed(line)})\n`);
      },
      fail(task, message) {
        const line = touch(task);
        line.finished = Date.now();
        stream.write(`[${task}] FAILED: ${message} (${elapsed(line)})\n`);
      },
      close() {},
    };
  }

  let drawn = 0;
  const spinner = ['|', '/', '-', '\\'];
  let tick = 0;
  const width = () => Math.max(40, (stream.columns ?? 100) - 1);
  const draw = () => {
    if (drawn) stream.write(`\x1b[${drawn}A`);
    tick++;
    for (const line of lines.values()) {
      const mark = line.finished ? line.mark : spinner[tick % spinner.length];
      const text = `${mark} ${line.task.padEnd(12)} ${elapsed(line).padStart(5)}  ${line.message.replace(/\s+/g, ' ')}`;
      stream.write(`\x1b[2K${text.slice(0, width())}\n`);
    }
    drawn = lines.size;
  };
  const timer = setInterval(draw, 250);
  timer.unref();
  return {
    update(task, message) {
      touch(task).message = message;
    },
    log(task, message) {
      if (drawn) stream.write(`\x1b[${drawn}A\x1b[0J`);
      drawn = 0;
      stream.write(`[${task}] ${message}\n`);
      draw();
    },
    done(task, message) {
      const line = touch(task);
      Object.assign(line, { finished: Date.now(), message, mark: '✔' });
      draw();
    },
    fail(task, message) {
      const line = touch(task);
      Object.assign(line, { finished: Date.now(), message, mark: '✘' });
      draw();
    },
    close() {
      clearInterval(timer);
      draw();
    },
  };
}
