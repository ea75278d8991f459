// An embedded system for the vmm service tests: every service in one process, vmm given an
// in-memory source for mapped files, and typed clients for vmm, the machine and pmm over either
// transport (in-process, or gRPC through the gateway).
import { expect } from "vitest";
import { MachineService } from "../../../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../../../gen/astra/pmm/v1/pmm_pb.ts";
import { VmmService } from "../../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../../lib/host.ts";
import type { SystemConfig } from "../../../lib/module.ts";
import {
  abbreviatedVpn,
  decodeHpte,
  HPTE_BYTES,
  type HpteFields,
  HPTES_PER_GROUP,
  htabSizeField,
  PAGE_SHIFT_4K,
  pageRealAddress,
  primaryHash,
  PTEG_BYTES,
  ptegAddress,
  SEGMENT_256M,
  SEGMENT_SHIFT_256M,
} from "../../../lib/ppc/hpt.ts";
import { type Client, client, type Transport } from "../../../lib/rpc.ts";
import { loadFactory } from "../../../services/index.ts";
import type { FileBackingFields, OpenFileSource } from "../../../services/vmm/files.ts";
import { createVmm } from "../../../services/vmm/server.ts";

export const P = 4096;
export const MIB = 1024 * 1024;

/** Files by open file description id, as storage would serve them, with the holds vmm takes. */
export class MemoryFileSource implements OpenFileSource {
  readonly files = new Map<bigint, Uint8Array>();
  /** Descriptions by "pid:fd", for HoldDescriptor. */
  readonly descriptors = new Map<string, bigint>();
  /** Holds taken (HoldDescriptor) and given back (ReleaseOpenFile), by description. */
  readonly held = new Map<bigint, number>();
  readonly released: bigint[] = [];
  private nextId = 100n;

  add(bytes: Uint8Array): bigint {
    const id = this.nextId++;
    this.files.set(id, bytes.slice());
    return id;
  }

  read(openFileId: bigint, offset: number, length: number): Promise<Uint8Array> {
    const bytes = this.files.get(openFileId)!;
    return Promise.resolve(
      bytes.slice(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)),
    );
  }

  write(openFileId: bigint, offset: number, bytes: Uint8Array): Promise<void> {
    const old = this.files.get(openFileId)!;
    const grown = new Uint8Array(Math.max(old.length, offset + bytes.length));
    grown.set(old);
    grown.set(bytes, offset);
    this.files.set(openFileId, grown);
    return Promise.resolve();
  }

  hold(pid: number, fd: number): Promise<FileBackingFields> {
    const openFileId = this.descriptors.get(`${pid}:${fd}`);
    if (openFileId === undefined) {
      return Promise.reject(new AstraError(Code.NOT_FOUND, Errno.EBADF, `no fd ${fd}`));
    }
    this.held.set(openFileId, (this.held.get(openFileId) ?? 0) + 1);
    return Promise.resolve({
      openFileId,
      path: `/file-${openFileId}`,
      device: 0x801,
      inode: openFileId,
      readable: true,
      writable: true,
    });
  }

  release(openFileId: bigint): Promise<void> {
    this.released.push(openFileId);
    this.held.set(openFileId, (this.held.get(openFileId) ?? 0) - 1);
    return Promise.resolve();
  }
}

export interface Clients {
  vmm: Client<typeof VmmService>;
  machine: Client<typeof MachineService>;
  pmm: Client<typeof PmmService>;
}

export interface Rig {
  system: EmbeddedSystem;
  files: MemoryFileSource;
  config: SystemConfig;
  clients(kind: "in-process" | "grpc"): Clients;
  close(): Promise<void>;
}

export async function startRig(): Promise<Rig> {
  const files = new MemoryFileSource();
  const dataDir = await Deno.makeTempDir({ prefix: "astra-vmm-service-" });
  const config: SystemConfig = { memoryBytes: 64 * MIB, numaNodes: 1, cpus: 2, dataDir };
  const system = await bootEmbedded(
    async (name) =>
      name === "vmm" ? (peers, cfg) => createVmm(peers, cfg, { files }) : await loadFactory(name),
    config,
    { gateway: "127.0.0.1:0" },
  );
  const grpc = new GrpcTransport(system.gatewayAddress!);
  const over = (transport: Transport): Clients => ({
    vmm: client(VmmService, transport, "test"),
    machine: client(MachineService, transport, "test"),
    pmm: client(PmmService, transport, "test"),
  });
  const inProcess = over(system.router.transport());
  const remote = over(grpc);
  return {
    system,
    files,
    config,
    clients: (kind) => kind === "grpc" ? remote : inProcess,
    async close() {
      grpc.close();
      await system.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** The errno a call fails with, or "none". */
export async function errnoOf(promise: Promise<unknown>): Promise<Errno | "none"> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  return "none";
}

export function pattern(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => ((i * 7 + seed * 13) % 251) + 1);
}

/** An HPTE found in guest memory, and where. */
export interface FoundHpte {
  address: number;
  fields: HpteFields;
  realAddress: number;
}

/**
 * Looks for the entry translating `va` the way the MMU walks: the primary PTEG of the page's
 * hash, then the secondary one, each read from guest memory through the machine.
 */
export async function findHpte(clients: Clients, spaceId: bigint, va: number): Promise<FoundHpte | null> {
  const stats = await clients.vmm.getStatistics({});
  const origin = Number(stats.htabOrigin);
  const sizeField = htabSizeField(Number(stats.htabBytes));
  const { segment } = await clients.vmm.getSegment({ spaceId, address: BigInt(va) });
  const vsid = Number(segment!.vsid);
  const offset = va % 2 ** SEGMENT_SHIFT_256M;
  const hash = primaryHash(vsid, SEGMENT_256M, Math.floor(offset / P));
  const avpn = abbreviatedVpn(vsid, SEGMENT_256M, offset, PAGE_SHIFT_4K);
  for (const secondary of [false, true]) {
    const group = ptegAddress(origin, sizeField, hash, secondary);
    const { data } = await clients.machine.readPhysical({
      address: BigInt(group),
      length: BigInt(PTEG_BYTES),
    });
    for (let slot = 0; slot < HPTES_PER_GROUP; slot++) {
      const fields = decodeHpte(data, slot * HPTE_BYTES);
      if (fields.valid && fields.secondary === secondary && fields.avpn === avpn) {
        return {
          address: group + slot * HPTE_BYTES,
          fields,
          realAddress: pageRealAddress(fields.arpn, PAGE_SHIFT_4K),
        };
      }
    }
  }
  return null;
}
