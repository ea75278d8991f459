// MachineService.AccessDevices: an ordered batch of guest-memory and device-register accesses in
// one call. A driver that writes a submission entry and then rings its doorbell, or reads the data
// of finished commands and then writes the completion doorbell, or vmm zeroing a page and writing
// the page-table entry that maps it, pays one round trip to the machine instead of one per access. The accesses happen exactly as the separate RPCs would make them, in
// order; the batch is checked whole before the first is made, so only a fault of the memory or a
// device (not a malformed request) can leave it half done.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { DeviceAccess, DeviceAccessResultSchema } from "../../gen/astra/machine/v1/machine_pb.ts";
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";
import type { MmioBus, MmioWidth } from "./devices/mmio.ts";
import { safeNumber } from "./machine.ts";
import type { PhysicalMemory } from "./memory.ts";
import { MAX_BATCH_ACCESSES, MAX_BATCH_BYTES } from "../../lib/access_devices.ts";

type Checked =
  | { kind: "read-physical"; address: number; length: number }
  | { kind: "write-physical"; address: number; data: Uint8Array }
  | { kind: "fill-physical"; address: number; length: number; value: number }
  | { kind: "read-mmio"; address: number; width: MmioWidth }
  | { kind: "write-mmio"; address: number; width: MmioWidth; value: bigint };

export function mmioWidth(width: number, field = "width"): MmioWidth {
  if (width !== 1 && width !== 2 && width !== 4 && width !== 8) {
    throw invalidArgument(field, `an MMIO access is 1, 2, 4 or 8 bytes, not ${width}`);
  }
  return width;
}

/** A value a store of `width` bytes can hold, or EINVAL naming `field`. */
export function mmioValue(value: bigint, width: MmioWidth, field = "value"): bigint {
  if (width < 8 && value >> BigInt(width * 8) !== 0n) {
    throw invalidArgument(field, `0x${value.toString(16)} does not fit in ${width} byte(s)`);
  }
  return value;
}

/** Renames the argument an error names to its place in the batch, and records the index. */
function atIndex(err: unknown, index: number, field: string): unknown {
  if (err instanceof AstraError) {
    const argument = err.detail.argument;
    err.detail.argument = `accesses[${index}].${field}${argument ? `.${argument}` : ""}`;
    err.detail.facts.access_index = String(index);
  }
  return err;
}

/** A register address a load or store of `width` bytes may use: naturally aligned. */
function mmioAddress(value: bigint, width: MmioWidth): number {
  const address = safeNumber(value, "address");
  if (address % width !== 0) {
    throw invalidArgument(
      "address",
      `a ${width}-byte MMIO access at 0x${address.toString(16)} is not naturally aligned`,
    );
  }
  return address;
}

function check(access: DeviceAccess, index: number): Checked {
  const a = access.access;
  try {
    switch (a.case) {
      case "readPhysical":
        return {
          kind: "read-physical",
          address: safeNumber(a.value.address, "address"),
          length: safeNumber(a.value.length, "length"),
        };
      case "writePhysical":
        return {
          kind: "write-physical",
          address: safeNumber(a.value.address, "address"),
          data: a.value.data,
        };
      case "fillPhysical":
        if (a.value.value > 255) throw invalidArgument("value", `a byte is 0..255, not ${a.value.value}`);
        return {
          kind: "fill-physical",
          address: safeNumber(a.value.address, "address"),
          length: safeNumber(a.value.length, "length"),
          value: a.value.value,
        };
      case "readMmio": {
        const width = mmioWidth(a.value.width);
        return { kind: "read-mmio", address: mmioAddress(a.value.address, width), width };
      }
      case "writeMmio": {
        const width = mmioWidth(a.value.width);
        return {
          kind: "write-mmio",
          address: mmioAddress(a.value.address, width),
          width,
          value: mmioValue(a.value.value, width),
        };
      }
      default:
        throw invalidArgument(
          "",
          `access ${index} is none of a physical read, write or fill, an MMIO read or write`,
        );
    }
  } catch (err) {
    throw atIndex(err, index, a.case ? snake(a.case) : "access");
  }
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function tooLarge(message: string): AstraError {
  return new AstraError(Code.RESOURCE_EXHAUSTED, Errno.E2BIG, message, { argument: "accesses" });
}

/** Checks a whole batch, then makes its accesses in order; one result per access. */
export function accessDevices(
  memory: PhysicalMemory,
  bus: MmioBus,
  accesses: readonly DeviceAccess[],
): MessageInitShape<typeof DeviceAccessResultSchema>[] {
  if (accesses.length > MAX_BATCH_ACCESSES) {
    throw tooLarge(`at most ${MAX_BATCH_ACCESSES} accesses per batch, not ${accesses.length}`);
  }
  const checked = accesses.map(check);
  let read = 0;
  let written = 0;
  for (const c of checked) {
    if (c.kind === "read-physical") read += c.length;
    else if (c.kind === "write-physical") written += c.data.length;
  }
  if (read > MAX_BATCH_BYTES || written > MAX_BATCH_BYTES) {
    throw tooLarge(
      `a batch reads and writes at most ${MAX_BATCH_BYTES} bytes each, not ${read} read and ${written} written`,
    );
  }
  const results: MessageInitShape<typeof DeviceAccessResultSchema>[] = new Array(checked.length);
  for (let i = 0; i < checked.length; i++) {
    const c = checked[i];
    try {
      switch (c.kind) {
        case "read-physical":
          results[i] = { result: { case: "data", value: memory.read(c.address, c.length) } };
          break;
        case "write-physical":
          memory.write(c.address, c.data);
          results[i] = {};
          break;
        case "fill-physical":
          memory.fill(c.address, c.length, c.value);
          results[i] = {};
          break;
        case "read-mmio":
          results[i] = { result: { case: "value", value: bus.read(c.address, c.width) } };
          break;
        case "write-mmio":
          bus.write(c.address, c.width, c.value);
          results[i] = {};
          break;
      }
    } catch (err) {
      throw atIndex(err, i, c.kind.replace("-", "_"));
    }
  }
  return results;
}
