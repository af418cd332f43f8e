// Bytes in order, kept in blocks of their own: appends copy into the last block, the oldest bytes are
// cut from the front. A queue of many small console writes costs its byte count plus a block, and never
// keeps alive the larger buffers (socket reads, Node's shared 8 KiB pool slabs) those writes came from.

interface Block {
  buf: Buffer;
  start: number;
  end: number;
  /** A view of it was handed out: nothing more is appended to it. */
  sealed: boolean;
}

export class ByteQueue {
  private blocks: Block[] = [];
  /** Bytes held. */
  size = 0;

  constructor(private readonly blockBytes = 64 << 10) {}

  append(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.length) {
      let last = this.blocks[this.blocks.length - 1];
      if (!last || last.sealed || last.end === last.buf.length) {
        last = { buf: Buffer.allocUnsafeSlow(this.blockBytes), start: 0, end: 0, sealed: false };
        this.blocks.push(last);
      }
      const n = Math.min(data.length - offset, last.buf.length - last.end);
      last.buf.set(data.subarray(offset, offset + n), last.end);
      last.end += n;
      offset += n;
    }
    this.size += data.length;
  }

  /** Drops the oldest `bytes`; returns how many were dropped. */
  dropFront(bytes: number): number {
    let dropped = 0;
    while (dropped < bytes && this.blocks.length > 0) {
      const first = this.blocks[0];
      const n = Math.min(bytes - dropped, first.end - first.start);
      first.start += n;
      dropped += n;
      if (first.start === first.end && (first.sealed || this.blocks.length > 1 || first.end === first.buf.length)) this.blocks.shift();
    }
    this.size -= dropped;
    return dropped;
  }

  /** Takes up to maxBytes from the front, as a view (no copy) of one block. */
  takeFront(maxBytes: number): Buffer | undefined {
    const first = this.blocks[0];
    if (!first || first.start === first.end) return undefined;
    const n = Math.min(maxBytes, first.end - first.start);
    const view = first.buf.subarray(first.start, first.start + n);
    first.start += n;
    first.sealed = true; // the view shares its memory: later bytes go to a new block
    if (first.start === first.end) this.blocks.shift();
    this.size -= n;
    return view;
  }

  /** Everything held, as one buffer (a copy). */
  concat(): Buffer {
    return Buffer.concat(
      this.blocks.map((b) => b.buf.subarray(b.start, b.end)),
      this.size,
    );
  }

  clear(): void {
    this.blocks = [];
    this.size = 0;
  }
}
