/**
 * Framing of the host<->agent byte stream (a virtio-serial port in the guest, a unix
 * socket on the host), and of the host-local hub connections, which use the same bytes.
 *
 *   0         4      5         9
 *   +---------+------+---------+----------------------+
 *   | length  | kind | stream  | payload (length B)   |
 *   | u32 BE  | u8   | u32 BE  |                      |
 *   +---------+------+---------+----------------------+
 *
 *   kind MESSAGE: payload is one JSON message (messages.ts), stream is 0
 *   kind DATA:    payload is bytes of a process stream (stdin, stdout, stderr, tty)
 *   kind EOF:     the stream has ended in the sender's direction (empty payload)
 *   kind CREDIT:  the receiver of a stream has consumed (written out) u32 BE more bytes
 *                 of it: the sender may send that many more (channel.ts STREAM_WINDOW)
 */
export const HEADER_BYTES = 9;
export const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Data frames are cut to this size so one stream cannot hold the channel for long. */
export const DATA_CHUNK = 64 * 1024;
/**
 * Bytes of one stream a sender may have sent and not yet had credited back. The receiver
 * never stops reading the connection (requests and events share it), so this bounds what
 * it may have to hold per stream while the stream's consumer is slow or not reading.
 */
export const STREAM_WINDOW = 4 * DATA_CHUNK;

export enum FrameKind {
  Message = 1,
  Data = 2,
  Eof = 3,
  Credit = 4,
}

export interface Frame {
  kind: FrameKind;
  stream: number;
  payload: Uint8Array;
}

export function encodeFrame(
  kind: FrameKind,
  stream: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint8(4, kind);
  view.setUint32(5, stream);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** Incremental decoder: feed it chunks as they arrive, get whole frames back. */
export class FrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): Frame[] {
    this.buf = this.buf.length ? concat(this.buf, chunk) : chunk;
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= HEADER_BYTES) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset + off);
      const length = view.getUint32(0);
      const kind = view.getUint8(4);
      if (length > MAX_PAYLOAD || kind < FrameKind.Message || kind > FrameKind.Credit) {
        throw new Error(`protocol: bad frame header (kind ${kind}, length ${length})`);
      }
      if (this.buf.length - off < HEADER_BYTES + length) break;
      const stream = view.getUint32(5);
      const start = off + HEADER_BYTES;
      frames.push({ kind, stream, payload: this.buf.slice(start, start + length) });
      off = start + length;
    }
    this.buf = off === this.buf.length ? new Uint8Array(0) : this.buf.slice(off);
    return frames;
  }

  /** Drops a partial frame: used when the peer reconnects. */
  reset(): void {
    this.buf = new Uint8Array(0);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
