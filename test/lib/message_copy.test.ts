// The in-process transport's message copies: independent of the original, equal to it field by
// field (or to what `create` makes of an init shape), and never under-estimating the wire size the
// size limit is checked against.
import { create, equals, isFieldSet, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ErrorDetailSchema } from "../../gen/astra/common/v1/errors_pb.ts";
import { KernelCallRequestSchema, SignalActionSchema } from "../../gen/astra/sched/v1/sched_pb.ts";
import { PathAtSchema, VfsServiceWriteRequestSchema } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { copyMessage } from "../../lib/message_copy.ts";

const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

const kernelCallInit = fc.record({
  callId: uint64,
  cpu: fc.nat(),
  pid: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  tid: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  number: fc.nat(),
  arg0: uint64,
  arg5: uint64,
  inputs: fc.array(fc.record({ address: uint64, data: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 5 }),
});

const kernelCall = kernelCallInit.map((init) => create(KernelCallRequestSchema, init));

describe("copyMessage", () => {
  it("copies equal messages whose size bound covers the encoding", () => {
    fc.assert(fc.property(kernelCall, (message) => {
      const { copy, sizeBound } = copyMessage(KernelCallRequestSchema, message);
      expect(equals(KernelCallRequestSchema, copy, message)).toBe(true);
      expect(sizeBound).toBeGreaterThanOrEqual(toBinary(KernelCallRequestSchema, message).length);
    }));
  });

  it("shares no bytes, arrays or nested messages with the original", () => {
    const message = create(KernelCallRequestSchema, {
      inputs: [{ address: 8n, data: new Uint8Array([1, 2, 3]) }],
    });
    const { copy } = copyMessage(KernelCallRequestSchema, message);
    copy.inputs[0].data[0] = 99;
    copy.inputs[0].address = 9n;
    copy.inputs.length = 0;
    expect(message.inputs).toHaveLength(1);
    expect(message.inputs[0].data[0]).toBe(1);
    expect(message.inputs[0].address).toBe(8n);
  });

  it("keeps whether an explicit-presence field is set", () => {
    const offset = VfsServiceWriteRequestSchema.field.offset;
    const unset =
      copyMessage(VfsServiceWriteRequestSchema, create(VfsServiceWriteRequestSchema, { fd: 1 })).copy;
    const zero =
      copyMessage(VfsServiceWriteRequestSchema, create(VfsServiceWriteRequestSchema, { fd: 1, offset: 0n }))
        .copy;
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
        const { copy, sizeBound } = copyMessage(schema as never, value) as { copy: never; sizeBound: number };
        expect(equals(schema as never, copy as never, value as never)).toBe(true);
        expect(sizeBound).toBeGreaterThanOrEqual(toBinary(schema as never, value as never).length);
      }
      const detail = create(ErrorDetailSchema, { message: text, facts: { [text]: text, lba: "7" } });
      const copied = copyMessage(ErrorDetailSchema, detail);
      expect(equals(ErrorDetailSchema, copied.copy as never, detail)).toBe(true);
      expect(copied.sizeBound).toBeGreaterThanOrEqual(toBinary(ErrorDetailSchema, detail).length);
    }));
  });

  it("makes from an init shape the message create makes, sharing nothing with the init", () => {
    fc.assert(fc.property(kernelCallInit, (init) => {
      const { copy, sizeBound } = copyMessage(KernelCallRequestSchema, init);
      const created = create(KernelCallRequestSchema, structuredClone(init));
      expect(copy).toEqual(created);
      expect(equals(KernelCallRequestSchema, copy, created)).toBe(true);
      expect(sizeBound).toBeGreaterThanOrEqual(toBinary(KernelCallRequestSchema, created).length);
      for (let i = 0; i < init.inputs.length; i++) {
        expect(copy.inputs[i].data).not.toBe(init.inputs[i].data);
        expect(copy.inputs[i].$typeName).toBe("astra.sched.v1.GuestMemory");
      }
    }));
  });

  it("fills what an init leaves out with the defaults create gives: zeros, empty lists, maps and oneofs", () => {
    const { copy } = copyMessage(ErrorDetailSchema, undefined);
    expect(copy).toEqual(create(ErrorDetailSchema));
    const action = copyMessage(SignalActionSchema, { handler: 5n }).copy;
    expect(action).toEqual(create(SignalActionSchema, { handler: 5n }));
    const write = copyMessage(VfsServiceWriteRequestSchema, { data: [1, 2, 3] }).copy;
    expect(write.data).toEqual(new Uint8Array([1, 2, 3]));
    expect(isFieldSet(write, VfsServiceWriteRequestSchema.field.offset)).toBe(false);
  });
});
