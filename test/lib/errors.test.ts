import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno, invalidArgument, toAstraError, unimplemented } from "../../lib/errors.ts";

describe("AstraError", () => {
  it("carries status code, errno and the argument at fault", () => {
    const err = invalidArgument("count", "count must be at least 1");
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.errno).toBe(Errno.EINVAL);
    expect(err.detail.argument).toBe("count");
    expect(err.describe()).toBe("INVALID_ARGUMENT EINVAL count must be at least 1 (argument: count)");
  });

  it("turns unexpected exceptions into INTERNAL/EIO and keeps AstraErrors as they are", () => {
    const wrapped = toAstraError(new TypeError("x is undefined"), "vmm");
    expect(wrapped.code).toBe(Code.INTERNAL);
    expect(wrapped.errno).toBe(Errno.EIO);
    expect(wrapped.detail.service).toBe("vmm");
    const original = unimplemented("Fork", "issue 7");
    expect(toAstraError(original)).toBe(original);
    expect(original.code).toBe(Code.UNIMPLEMENTED);
    expect(original.message).toContain("issue 7");
  });

  it("round-trips through its detail", () => {
    const err = new AstraError(Code.RESOURCE_EXHAUSTED, Errno.ENOMEM, "out of frames", {
      facts: { "node0.free": "0" },
      service: "pmm",
    });
    const back = AstraError.fromDetail(err.code, err.detail);
    expect(back.describe()).toBe(err.describe());
    expect(back.detail.facts["node0.free"]).toBe("0");
  });
});
