// The loader's orchestration (exec.ts) against in-memory peers: what it maps where and with which
// protection, the zeros after a segment's file bytes (padzero) in writable and read-only segments,
// the initial stack as the guest reads it, static PIEs, refusals, and that a failure at any step
// leaves no address space, thread context or file hold behind.
import { describe, expect, it } from "vitest";
import { MappingKind, MappingRole } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  AT_EXECFN,
  AT_HWCAP,
  AT_HWCAP2,
  AT_PAGESZ,
  AT_PLATFORM,
  AT_RANDOM,
} from "../../services/sched/auxv.ts";
import { type CpuDescription, loadProgram, type LoadRequest, STACK_TOP } from "../../services/sched/exec.ts";
import {
  buildElf,
  DATA_VADDR,
  elfWith,
  PF_R,
  PF_X,
  PT_LOAD,
  TEXT_VADDR,
  validExecSpec,
} from "./elf-image.ts";
import { FakePeers } from "./fake_peers.ts";

const CPU: CpuDescription = {
  hwcap: 0xdc002000,
  hwcap2: 0x8ee00000,
  platform: "power9",
  dcacheBlockSize: 128,
  icacheBlockSize: 128,
};
const R = 1, W = 2, X = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fileBytes(): Uint8Array {
  const spec = validExecSpec();
  // Recognisable contents after the headers: each byte its offset's low bits, never zero.
  spec.contents.push({ offset: 0x180, bytes: Uint8Array.from({ length: 0x100 }, (_, i) => (i % 255) + 1) });
  return buildElf(spec);
}

function request(overrides: Partial<LoadRequest> = {}): LoadRequest {
  return {
    pid: 7,
    tid: 7,
    temporaryContext: false,
    programPath: encoder.encode("./prog"),
    argv: [encoder.encode("prog"), encoder.encode("one")],
    envp: [encoder.encode("HOME=/")],
    credentials: { uid: 0, euid: 0, gid: 0, egid: 0 },
    stackLimit: 8n * 1024n * 1024n,
    ...overrides,
  };
}

const seeded = (target: Uint8Array) => target.fill(0xab);

function u64(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(offset, true);
}

function cString(peers: FakePeers, spaceId: bigint, address: bigint): string {
  const bytes: number[] = [];
  for (let at = address;; at++) {
    const [byte] = peers.read(spaceId, at, 1);
    if (byte === 0) return decoder.decode(Uint8Array.from(bytes));
    bytes.push(byte);
  }
}

async function errnoOf(promise: Promise<unknown>): Promise<Errno> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  throw new Error("expected the call to fail");
}

describe("loadProgram", () => {
  it("maps text from the file, the data's last file page as written anonymous memory, bss and a stack", async () => {
    const peers = new FakePeers();
    const image = fileBytes();
    peers.files.set("/prog", image);
    const loaded = await loadProgram(peers, CPU, seeded, request());
    const space = peers.space(loaded.spaceId);
    const summary = space.mappings.map((m) => ({
      start: m.start,
      end: m.end,
      prot: m.prot,
      kind: m.kind,
      fileOffset: m.kind === MappingKind.FILE_PRIVATE ? m.fileOffset : undefined,
    }));
    expect(summary.slice(0, 3)).toEqual([
      {
        start: TEXT_VADDR,
        end: TEXT_VADDR + 0x1000n,
        prot: R | X,
        kind: MappingKind.FILE_PRIVATE,
        fileOffset: 0n,
      },
      {
        start: 0x10010000n,
        end: 0x10011000n,
        prot: R | W,
        kind: MappingKind.ANONYMOUS_PRIVATE,
        fileOffset: undefined,
      },
      {
        start: 0x10011000n,
        end: 0x10013000n,
        prot: R | W,
        kind: MappingKind.ANONYMOUS_PRIVATE,
        fileOffset: undefined,
      },
    ]);
    const stack = space.mappings[3];
    expect(stack.end).toBe(STACK_TOP);
    expect(stack.growsDown).toBe(true);
    expect(stack.role).toBe(MappingRole.STACK);
    expect(stack.prot).toBe(R | W);
    expect(STACK_TOP - stack.start).toBeGreaterThanOrEqual(128n * 1024n);
    expect(space.breakBase).toBe(0x10013000n);

    // The data segment's page: the file's bytes up to p_offset + p_filesz, zeros after (padzero).
    const page = peers.read(loaded.spaceId, 0x10010000n, 4096);
    expect(page.subarray(0, 0x280)).toEqual(image.subarray(0, 0x280));
    expect(page.subarray(0x280).every((b) => b === 0)).toBe(true);
    expect(peers.read(loaded.spaceId, DATA_VADDR + 0x1000n, 16).every((b) => b === 0)).toBe(true);
    // The text page reads the file, bytes past the segment included, as Linux maps it.
    expect(peers.read(loaded.spaceId, TEXT_VADDR, 0x280)).toEqual(image.subarray(0, 0x280));
  });

  it("writes the initial stack the registers point at: argc, argv, envp and the auxiliary vector", async () => {
    const peers = new FakePeers();
    peers.files.set("/prog", fileBytes());
    const loaded = await loadProgram(peers, CPU, seeded, request());
    const context = peers.contexts.get(7)!;
    expect(context.spaceId).toBe(loaded.spaceId);
    const gprs = context.registers.gprs;
    expect(context.registers.pc).toBe(TEXT_VADDR + 0x180n);
    expect(gprs[12]).toBe(context.registers.pc);
    const sp = gprs[1];
    expect(sp % 16n).toBe(0n);
    expect(gprs[3]).toBe(2n);
    const top = peers.read(loaded.spaceId, sp, Number(STACK_TOP - sp));
    expect(u64(top, 0)).toBe(2n);
    expect(cString(peers, loaded.spaceId, u64(top, 8))).toBe("prog");
    expect(cString(peers, loaded.spaceId, u64(top, 16))).toBe("one");
    expect(u64(top, 24)).toBe(0n);
    expect(cString(peers, loaded.spaceId, u64(top, 32))).toBe("HOME=/");
    expect(u64(top, 40)).toBe(0n);
    expect(gprs[6]).toBe(sp + 48n);
    const auxv = new Map<number, bigint>();
    for (let at = 48;; at += 16) {
      const type = Number(u64(top, at));
      if (type === 0) break;
      auxv.set(type, u64(top, at + 8));
    }
    expect(auxv.get(AT_HWCAP)).toBe(0xdc002000n);
    expect(auxv.get(AT_HWCAP2)).toBe(0x8ee00000n);
    expect(auxv.get(AT_PAGESZ)).toBe(4096n);
    expect(cString(peers, loaded.spaceId, auxv.get(AT_PLATFORM)!)).toBe("power9");
    expect(cString(peers, loaded.spaceId, auxv.get(AT_EXECFN)!)).toBe("./prog");
    expect(peers.read(loaded.spaceId, auxv.get(AT_RANDOM)!, 16).every((b) => b === 0xab)).toBe(true);
    // The path is storage's absolute one; the hold went to vmm with the text mapping.
    expect(loaded.executablePath).toBe("/prog");
    expect(peers.openFiles.size).toBe(1);
    expect(peers.count("vfs.releaseOpenFile")).toBe(0);
  });

  it("zero-fills after the file bytes of a read-only segment too, leaving it read-only", async () => {
    const peers = new FakePeers();
    const image = elfWith((spec) => {
      spec.headers = spec.headers.filter((h) => h.type === PT_LOAD && (h.flags & PF_X) !== 0);
      spec.headers[0].memsz = 0x3000n; // text with a zero-filled tail
      spec.contents.push({ offset: 0x100, bytes: new Uint8Array(0xc0).fill(0x77) });
    });
    peers.files.set("/prog", image);
    const loaded = await loadProgram(peers, CPU, seeded, request());
    const space = peers.space(loaded.spaceId);
    expect(space.mappings[0]).toMatchObject({ start: TEXT_VADDR, end: TEXT_VADDR + 0x1000n, prot: R | X });
    expect(space.mappings[0].kind).toBe(MappingKind.ANONYMOUS_PRIVATE);
    expect(peers.count("vmm.mprotect")).toBe(1);
    // No mapping of the file took the hold: the loader gave it back.
    expect(peers.count("vfs.releaseOpenFile")).toBe(1);
    expect(peers.openFiles.size).toBe(0);
    const page = peers.read(loaded.spaceId, TEXT_VADDR, 4096);
    expect(page.subarray(0, 0x1c0)).toEqual(image.subarray(0, 0x1c0));
    expect(page.subarray(0x1c0).every((b) => b === 0)).toBe(true);
  });

  it("places a static PIE at ppc64's ELF_ET_DYN_BASE", async () => {
    const peers = new FakePeers();
    peers.files.set(
      "/pie",
      elfWith((spec) => {
        spec.type = 3;
        spec.headers = spec.headers.filter((h) => h.type === PT_LOAD);
        spec.headers[0].vaddr = 0n;
        spec.headers[1].vaddr = 0x10200n;
        spec.entry = 0x180n;
      }),
    );
    const loaded = await loadProgram(peers, CPU, seeded, request({ programPath: encoder.encode("/pie") }));
    expect(loaded.plan.loadBias).toBe(0x1_0000_0000n);
    expect(peers.contexts.get(7)!.registers.pc).toBe(0x1_0000_0180n);
    expect(peers.space(loaded.spaceId).mappings[0].start).toBe(0x1_0000_0000n);
  });

  it("refuses what is not a static ppc64le executable with ENOEXEC and keeps nothing", async () => {
    const peers = new FakePeers();
    peers.files.set("/script", encoder.encode("#!/bin/sh\necho hi\n"));
    peers.files.set(
      "/dynamic",
      elfWith((spec) => {
        spec.headers.push({
          type: 3,
          flags: PF_R,
          offset: 0x240n,
          vaddr: 0n,
          filesz: 0x10n,
          memsz: 0x10n,
          align: 1n,
        });
        spec.contents.push({ offset: 0x240, bytes: encoder.encode("/lib/ld64.so.2\0") });
      }),
    );
    for (const path of ["/script", "/dynamic"]) {
      const error = await loadProgram(peers, CPU, seeded, request({ programPath: encoder.encode(path) }))
        .then(() => null, (e) => e as AstraError);
      expect(error).toBeInstanceOf(AstraError);
      expect(error?.errno).toBe(Errno.ENOEXEC);
    }
    expect(peers.spaces.size).toBe(0);
    expect(peers.openFiles.size).toBe(0);
    expect(peers.contexts.size).toBe(0);
    expect(await errnoOf(loadProgram(peers, CPU, seeded, request({ programPath: encoder.encode("/none") }))))
      .toBe(Errno.ENOENT);
  });

  it("undoes every step when a later one fails", async () => {
    for (
      const step of ["vmm.mmap", "vmm.setBreakBase", "machine.createThreadContext", "machine.writeVirtual"]
    ) {
      const peers = new FakePeers();
      peers.files.set("/prog", fileBytes());
      peers.failOn = step;
      expect(await errnoOf(loadProgram(peers, CPU, seeded, request())), step).toBe(Errno.EIO);
      expect(peers.spaces.size, step).toBe(0);
      expect(peers.contexts.size, step).toBe(0);
      expect(peers.openFiles.size, step).toBe(0);
    }
  });

  it("discards a temporary context once the image is written (execve)", async () => {
    const peers = new FakePeers();
    peers.files.set("/prog", fileBytes());
    const loaded = await loadProgram(peers, CPU, seeded, request({ tid: 900, temporaryContext: true }));
    expect(peers.contexts.has(900)).toBe(false);
    expect(peers.spaces.has(loaded.spaceId)).toBe(true);
    expect(loaded.registers.r3).toBe(2n);
  });

  it("reads only the headers of the file, however large", async () => {
    const peers = new FakePeers();
    const spec = validExecSpec();
    spec.fileSize = 8 * 1024 * 1024;
    peers.files.set("/big", buildElf(spec));
    await loadProgram(peers, CPU, seeded, request({ programPath: encoder.encode("/big") }));
    expect(peers.count("vfs.readOpenFile")).toBe(2); // the headers, then the data page's file bytes
  });
});
