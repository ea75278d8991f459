import { describe, expect, it } from "vitest";
import { Code } from "../../lib/errors.ts";
import { bytes, commitAll, dump, formattedVolume, text } from "./helpers.ts";

describe("savepoints", () => {
  it("rolls back nested savepoints to exactly the state each one saw", async () => {
    const { volume } = await formattedVolume(1024);
    await commitAll(volume, [["gone", "before"]]);
    const t = volume.begin().id;
    const read = async (key: string) => text(await volume.get(t, bytes(key)));
    await volume.put(t, bytes("a"), bytes("1"));
    const outer = await volume.savepoint(t);
    await volume.put(t, bytes("b"), bytes("2"));
    expect(await volume.delete(t, bytes("gone"))).toBe(true);
    const inner = await volume.savepoint(t);
    await volume.put(t, bytes("a"), bytes("3"));
    await volume.put(t, bytes("c"), bytes("4"));
    await volume.rollbackToSavepoint(t, inner);
    expect([await read("a"), await read("b"), await read("c"), await read("gone")]).toEqual([
      "1",
      "2",
      undefined,
      undefined,
    ]);
    // The savepoint survives its rollback and can be rolled back to again.
    await volume.put(t, bytes("d"), bytes("5"));
    await volume.rollbackToSavepoint(t, inner);
    expect(await read("d")).toBeUndefined();
    await volume.rollbackToSavepoint(t, outer);
    expect([await read("a"), await read("b"), await read("gone")]).toEqual(["1", undefined, "before"]);
    // Savepoints made after the one rolled back to are gone.
    await expect(volume.rollbackToSavepoint(t, inner)).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await volume.commit(t);
    expect(Object.fromEntries(await dump(volume))).toEqual({ a: "1", gone: "before" });
  });

  it("gives back the locks taken after the savepoint and keeps the earlier ones", async () => {
    const { volume } = await formattedVolume(1024);
    const t = volume.begin().id;
    await volume.put(t, bytes("kept"), bytes("t"));
    const savepoint = await volume.savepoint(t);
    await volume.put(t, bytes("released"), bytes("t"));
    await volume.put(t, bytes("kept"), bytes("t2"));
    await volume.rollbackToSavepoint(t, savepoint);
    const other = volume.begin({ lockTimeoutMs: 30 }).id;
    await volume.put(other, bytes("released"), bytes("other"));
    await expect(volume.put(other, bytes("kept"), bytes("other"))).rejects.toMatchObject({
      code: Code.ABORTED,
    });
    await volume.commit(t);
    expect(text(await volume.read(bytes("kept")))).toBe("t");
    expect(await volume.read(bytes("released"))).toBeUndefined();
  });
});
