// One WebSocket as a byte stream, the shape a SPICE server reads and writes (as it would a TCP socket):
// binary frames in are bytes to read, bytes written go out as binary frames, with backpressure both ways.
import { Duplex } from "node:stream";
import { WebSocket } from "ws";
import type { Logger } from "../logger.js";

/** Counters for the close log line. */
export interface StreamCounts {
  bytesIn: number;
  bytesOut: number;
}

export function websocketDuplex(ws: WebSocket, logger: Logger, counts: StreamCounts = { bytesIn: 0, bytesOut: 0 }): Duplex {
  // A peer that went away is the end of the stream, not an error: the acceptor sees 'close', and the
  // bridge logs why (so an acceptor without an 'error' listener is safe).
  const gone = (why: string, err?: Error): void => {
    logger.debug({ err, why }, "websocket stream ends");
    duplex.destroy();
  };
  const send = (data: Buffer, callback: (error?: Error | null) => void): void => {
    counts.bytesOut += data.length;
    // ws calls back once the socket has taken the frame, so a client that stops reading stops the writer.
    ws.send(data, { binary: true }, (err) => {
      if (err) gone("send failed", err);
      callback();
    });
  };
  const duplex = new Duplex({
    read() {
      if (ws.isPaused) ws.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      send(chunk, callback);
    },
    // Small writes made while a frame is in flight go out together, as one frame.
    writev(chunks, callback) {
      send(Buffer.concat(chunks.map((c) => c.chunk as Buffer)), callback);
    },
    final(callback) {
      ws.close(1000);
      callback();
    },
    destroy(err, callback) {
      if (ws.readyState === WebSocket.OPEN) ws.close(err ? 1011 : 1000);
      else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      callback(err);
    },
  });
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      ws.close(1003, "SPICE over WebSocket takes binary frames only");
      return gone("text frame");
    }
    counts.bytesIn += data.length;
    if (!duplex.push(data)) ws.pause();
  });
  // ws reports protocol errors (bad frames, a frame over maxPayload) here, then closes the socket itself.
  ws.on("error", (err) => gone("websocket error", err));
  // A closed WebSocket carries nothing more either way: the stream closes at once, whether or not its
  // reader has read to the end (so an acceptor that stopped reading still gets its 'close').
  ws.on("close", () => duplex.destroy());
  return duplex;
}
