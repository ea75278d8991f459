// The busy-polling thread: lowest priority, spins after a touch, parks when a window passes
// without one, and is woken again by the next.
import { afterAll, describe, expect, it } from "vitest";
import { BusyPoll } from "../../lib/busy_poll.ts";

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Nice values of this process's threads. */
function niceValues(): number[] {
  const out: number[] = [];
  for (const task of Deno.readDirSync(`/proc/${Deno.pid}/task`)) {
    const stat = Deno.readTextFileSync(`/proc/${Deno.pid}/task/${task.name}/stat`);
    out.push(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
  }
  return out;
}

describe("busy polling", () => {
  const poll = new BusyPoll(200_000);
  afterAll(() => poll.stop());

  it("runs its spinner at nice 19 and parks it until the first touch", async () => {
    await until("the spinner to park", () => poll.parked);
    expect(niceValues().filter((n) => n === 19)).toHaveLength(1);
    expect(poll.wakeups).toBe(1);
  });

  it("spins through a stream of touches, and parks once they stop for a window", async () => {
    const before = poll.wakeups;
    poll.touch();
    await until("the spinner to wake", () => poll.wakeups === before + 1);
    // Touches closer together than the window keep it spinning: no new wakeup.
    for (let i = 0; i < 10; i++) {
      poll.touch();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(poll.wakeups).toBe(before + 1);
    await until("the spinner to park again", () => poll.parked);
    poll.touch();
    await until("the spinner to wake again", () => poll.wakeups === before + 2);
  });
});
