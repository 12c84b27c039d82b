// A text writer that gathers small pieces into chunks of about 64 KiB before handing them to the
// sink: one sink.write per event would be a system call each when the sink is a file or stdout.
import type { ExportSink } from './types.js';

export class ChunkedText {
  private parts: string[] = [];
  private size = 0;
  bytes = 0;

  constructor(private readonly sink: ExportSink, private readonly limit = 1 << 16) {}

  write(s: string): void {
    this.parts.push(s);
    this.size += s.length;
    if (this.size >= this.limit) this.flush();
  }

  flush(): void {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.bytes += Buffer.byteLength(chunk);
    this.sink.write(chunk);
    this.parts = [];
    this.size = 0;
  }
}
