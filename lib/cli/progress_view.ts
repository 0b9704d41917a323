import type { Progress } from "../fleet/api.ts";

/**
 * Progress for several subjects at once (e.g. ships being created in
 * parallel). On a terminal: one line per subject, redrawn in place. Else:
 * plain `==> [subject] message` lines, as everywhere.
 */
export class ProgressView {
  private lines = new Map<string, string>();
  private drawn = 0;
  private readonly tty: boolean;
  private readonly enc = new TextEncoder();

  constructor(
    subjects: string[],
    tty = Deno.stderr.isTerminal(),
    private readonly sink: (b: Uint8Array) => void = (b) => {
      let off = 0;
      while (off < b.length) off += Deno.stderr.writeSync(b.subarray(off));
    },
  ) {
    this.tty = tty;
    for (const s of subjects) this.lines.set(s, "waiting");
    if (this.tty) this.draw();
  }

  readonly progress: Progress = (message, subject) => {
    if (!this.tty || !subject || !this.lines.has(subject)) {
      this.write(
        subject ? `==> [${subject}] ${message}\n` : `==> ${message}\n`,
      );
      return;
    }
    this.lines.set(subject, message);
    this.draw();
  };

  /** The final word for a subject (e.g. "ready" or the error). */
  done(subject: string, message: string): void {
    this.progress(message, subject);
  }

  private draw() {
    const width = Math.max(...[...this.lines.keys()].map((k) => k.length));
    let text = this.drawn ? `\x1b[${this.drawn}A` : "";
    for (const [s, m] of this.lines) {
      text += `\x1b[2K==> ${s.padEnd(width)}  ${m}\n`;
    }
    this.drawn = this.lines.size;
    this.write(text);
  }

  private write(text: string) {
    this.sink(this.enc.encode(text));
  }
}
