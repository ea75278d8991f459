// The console UART's byte streams: everything guest software or services write is kept in a
// 64 KiB history and fanned out to every listener; input waits in a receive FIFO until read.
import { Channel } from "../../lib/channel.ts";

export const CONSOLE_HISTORY_BYTES = 64 * 1024;
export const CONSOLE_INPUT_FIFO_BYTES = 16 * 1024;

export interface ConsoleChunk {
  data: Uint8Array;
  /** Offset of `data` in everything output since power-on. */
  offset: number;
}

export class Console {
  private history = new Uint8Array(0);
  private written = 0;
  private readonly listeners = new Set<Channel<ConsoleChunk>>();
  private input: number[] = [];

  get bytesWritten(): number {
    return this.written;
  }

  write(data: Uint8Array): void {
    if (data.length === 0) return;
    const chunk = { data: data.slice(), offset: this.written };
    this.written += data.length;
    const kept = Math.min(CONSOLE_HISTORY_BYTES, this.history.length + data.length);
    const next = new Uint8Array(kept);
    const fromOld = kept - Math.min(kept, data.length);
    next.set(this.history.subarray(this.history.length - fromOld), 0);
    next.set(data.subarray(data.length - (kept - fromOld)), fromOld);
    this.history = next;
    for (const l of this.listeners) l.push(chunk);
  }

  /** Output from now on (after the retained history, if asked); ends when the listener stops. */
  subscribe(includeHistory: boolean): Channel<ConsoleChunk> {
    const channel = new Channel<ConsoleChunk>();
    if (includeHistory && this.history.length) {
      channel.push({ data: this.history.slice(), offset: this.written - this.history.length });
    }
    this.listeners.add(channel);
    return channel;
  }

  unsubscribe(channel: Channel<ConsoleChunk>): void {
    this.listeners.delete(channel);
    channel.close();
  }

  /** Queues input bytes; returns how many fit in the receive FIFO. */
  writeInput(data: Uint8Array): number {
    const accepted = Math.min(data.length, CONSOLE_INPUT_FIFO_BYTES - this.input.length);
    for (let i = 0; i < accepted; i++) this.input.push(data[i]);
    return accepted;
  }

  /** Takes up to `max` bytes of pending input. */
  readInput(max: number): Uint8Array {
    return Uint8Array.from(this.input.splice(0, max));
  }
}
