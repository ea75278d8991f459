import { describe, expect, it } from "vitest";
import { Channel } from "../../lib/channel.ts";

async function drain<T>(c: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of c) out.push(v);
  return out;
}

describe("Channel", () => {
  it("delivers values pushed before and while the consumer waits, in order, then ends", async () => {
    const c = new Channel<number>();
    c.push(1);
    const result = drain(c);
    await Promise.resolve();
    c.push(2);
    setTimeout(() => {
      c.push(3);
      c.close();
      c.push(4); // after close: dropped
    }, 5);
    expect(await result).toEqual([1, 2, 3]);
  });

  it("fails the consumer after the queued values", async () => {
    const c = new Channel<string>();
    c.push("a");
    c.fail(new Error("boom"));
    const seen: string[] = [];
    await expect((async () => {
      for await (const v of c) seen.push(v);
    })()).rejects.toThrow("boom");
    expect(seen).toEqual(["a"]);
  });

  it("stops when the consumer returns early", async () => {
    const c = new Channel<number>();
    c.push(1);
    c.push(2);
    for await (const v of c) {
      expect(v).toBe(1);
      break;
    }
    expect(c.isClosed).toBe(true);
  });
});
