// The in-process transport's message copies: independent of the original, equal to it field by
// field, and never under-estimating the wire size the size limit is checked against.
import { create, equals, isFieldSet, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KernelCallRequestSchema, SignalActionSchema } from "../../gen/astra/sched/v1/sched_pb.ts";
import { PathAtSchema, VfsServiceWriteRequestSchema } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { copyMessage } from "../../lib/message_copy.ts";

const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

const kernelCall = fc.record({
  callId: uint64,
  cpu: fc.nat(),
  pid: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  tid: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  number: fc.nat(),
  arg0: uint64,
  arg5: uint64,
  inputs: fc.array(fc.record({ address: uint64, data: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 5 }),
}).map((init) => create(KernelCallRequestSchema, init));

describe("copyMessage", () => {
  it("copies equal messages whose size bound covers the encoding", () => {
    fc.assert(fc.property(kernelCall, (message) => {
      const { copy, sizeBound } = copyMessage(message);
      expect(equals(KernelCallRequestSchema, copy, message)).toBe(true);
      expect(sizeBound).toBeGreaterThanOrEqual(toBinary(KernelCallRequestSchema, message).length);
    }));
  });

  it("shares no bytes, arrays or nested messages with the original", () => {
    const message = create(KernelCallRequestSchema, {
      inputs: [{ address: 8n, data: new Uint8Array([1, 2, 3]) }],
    });
    const { copy } = copyMessage(message);
    copy.inputs[0].data[0] = 99;
    copy.inputs[0].address = 9n;
    copy.inputs.length = 0;
    expect(message.inputs).toHaveLength(1);
    expect(message.inputs[0].data[0]).toBe(1);
    expect(message.inputs[0].address).toBe(8n);
  });

  it("keeps whether an explicit-presence field is set", () => {
    const offset = VfsServiceWriteRequestSchema.field.offset;
    const unset = copyMessage(create(VfsServiceWriteRequestSchema, { fd: 1 })).copy;
    const zero = copyMessage(create(VfsServiceWriteRequestSchema, { fd: 1, offset: 0n })).copy;
    expect(isFieldSet(unset, offset)).toBe(false);
    expect(isFieldSet(zero, offset)).toBe(true);
    expect(zero.offset).toBe(0n);
  });

  it("bounds strings by their UTF-8 size and keeps nested messages and oneofs", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), fc.uint8Array({ maxLength: 64 }), (text, data) => {
      const message = create(VfsServiceWriteRequestSchema, { pid: 3, fd: 1, data });
      const action = create(SignalActionSchema, { handler: 5n, mask: 7n });
      const path = create(PathAtSchema, { dirFd: -100, path: new TextEncoder().encode(text) });
      for (
        const [schema, value] of [[VfsServiceWriteRequestSchema, message], [SignalActionSchema, action], [
          PathAtSchema,
          path,
        ]] as const
      ) {
        const { copy, sizeBound } = copyMessage(value);
        expect(equals(schema as never, copy as never, value as never)).toBe(true);
        expect(sizeBound).toBeGreaterThanOrEqual(toBinary(schema as never, value as never).length);
      }
      expect(copyMessage(text).sizeBound).toBeGreaterThanOrEqual(new TextEncoder().encode(text).length);
    }));
  });
});
