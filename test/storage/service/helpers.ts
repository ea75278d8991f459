// Shared fixtures of the LfsxService tests: embedded systems, the astra command line, and damage
// to a volume's image.
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect } from "vitest";
import { AstraError, type Code, type Errno } from "../../../lib/errors.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../../lib/host.ts";
import type { Transport } from "../../../lib/rpc.ts";
import { BLOCK_SIZE, FileBlockDevice } from "../../../services/storage/lfsx/blockdev.ts";
import { Volume } from "../../../services/storage/lfsx/volume.ts";
import { loadFactory } from "../../../services/index.ts";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** An embedded system on `dataDir` with a gRPC gateway on a free port; `steps` gets the boot lines. */
export function bootSystem(dataDir: string, steps: Map<string, string> = new Map()): Promise<EmbeddedSystem> {
  return bootEmbedded(loadFactory, { memoryBytes: 64 * 1024 * 1024, numaNodes: 1, cpus: 1, dataDir }, {
    gateway: "127.0.0.1:0",
    onStep: (name, line) => steps.set(name, line),
  });
}

/**
 * One embedded system (bootSystem) for a whole describe block, in a folder of its own, reached in
 * process and over its gRPC gateway: `transports` names both; `restart` boots it again on the same
 * folder, as after a power-off.
 */
export class SuiteSystem {
  dataDir = "";
  system!: EmbeddedSystem;
  grpc!: GrpcTransport;
  readonly transports: [string, () => Transport][] = [
    ["in-process", () => this.system.router.transport()],
    ["grpc", () => this.grpc],
  ];

  /** Boots before the block's tests and removes everything after them. */
  constructor(prefix: string) {
    beforeAll(async () => {
      this.dataDir = await Deno.makeTempDir({ prefix });
      await this.#boot();
    });
    afterAll(async () => {
      await this.#shutdown();
      await Deno.remove(this.dataDir, { recursive: true });
    });
  }

  async restart(): Promise<void> {
    await this.#shutdown();
    await this.#boot();
  }

  async #boot(): Promise<void> {
    this.system = await bootSystem(this.dataDir);
    this.grpc = new GrpcTransport(this.system.gatewayAddress!);
  }

  async #shutdown(): Promise<void> {
    this.grpc.close();
    await this.system.shutdown();
  }
}

/** Resolves with the AstraError `promise` rejects with, after checking its status and errno. */
export async function failure(promise: Promise<unknown>, code: Code, errno?: Errno): Promise<AstraError> {
  const err = await promise.then(() => undefined, (e) => e);
  expect(err, "the call should have failed").toBeInstanceOf(AstraError);
  const astra = err as AstraError;
  expect(astra.code, astra.describe()).toBe(code);
  if (errno !== undefined) expect(astra.errno, astra.describe()).toBe(errno);
  return astra;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

function astraCommand(args: string[], options: Deno.CommandOptions = {}): Deno.Command {
  return new Deno.Command(`${REPO}/astra`, {
    args,
    cwd: REPO,
    env: { PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}` },
    stdin: "null",
    ...options,
  });
}

/** Starts `./astra ARGS` with its output piped, for a test to read as it goes. */
export function spawnAstra(args: string[]): Deno.ChildProcess {
  return astraCommand(args, { stdout: "piped", stderr: "inherit" }).spawn();
}

/** Runs `./astra ARGS` from the repository, with this test's Deno first on PATH. */
export async function astra(args: string[]): Promise<CommandResult> {
  const output = await astraCommand(args).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Fills a freshly formatted image with `count` keys of 80-byte values, in transactions of 40. */
export async function populateImage(path: string, count: number): Promise<void> {
  const device = await FileBlockDevice.open(path);
  const volume = await Volume.mount(device);
  for (let first = 0; first < count; first += 40) {
    const txn = volume.begin();
    for (let i = first; i < Math.min(count, first + 40); i++) {
      await volume.put(txn.id, bytes(keyName(i)), bytes("v".repeat(80)));
    }
    await volume.commit(txn.id);
  }
  await volume.unmount();
  await device.close();
}

export function keyName(i: number): string {
  return `key${String(i).padStart(5, "0")}`;
}

const NODE_MAGIC = 0x444e584c;
const LEAF_KIND = 1;

/**
 * Flips one bit in the data area of a leaf the volume really uses (the image also holds stale
 * copies from earlier checkpoints), and returns its block number. A candidate counts as live when
 * an offline check then reports it.
 */
export async function damageLiveLeaf(path: string): Promise<number> {
  const image = await Deno.readFile(path);
  const view = new DataView(image.buffer);
  for (let block = 0; block < image.length / BLOCK_SIZE; block++) {
    const at = block * BLOCK_SIZE;
    if (view.getUint32(at, true) !== NODE_MAGIC || image[at + 4] !== LEAF_KIND) continue;
    await flipBit(path, at + 2000);
    const device = await FileBlockDevice.open(path, { readOnly: true });
    const report = await Volume.check(device).finally(() => device.close());
    if (report.problems.some((p) => p.includes(`corrupt block ${block}`))) return block;
    await flipBit(path, at + 2000);
  }
  throw new Error(`${path} has no live leaf`);
}

async function flipBit(path: string, offset: number): Promise<void> {
  const file = await Deno.open(path, { read: true, write: true });
  try {
    const byte = new Uint8Array(1);
    await file.seek(offset, Deno.SeekMode.Start);
    await file.read(byte);
    byte[0] ^= 0x20;
    await file.seek(offset, Deno.SeekMode.Start);
    await file.write(byte);
  } finally {
    file.close();
  }
}
