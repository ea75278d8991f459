// `astra kv …`: the LFSX key-value store of a running system, over LfsxService on the default
// volume; `astra mkfs` and `astra fsck`: LFSX on a host image file, offline, with no system
// running, or on a block device of a running system, through its LfsxService.
import { parseArgs } from "node:util";
import { IsolationLevel, LfsxService, ScanDirection } from "../gen/astra/storage/v1/lfsx_pb.ts";
import { DEFAULT_GATEWAY_ADDRESS, DEFAULT_PORTS, parseSize, readEnv } from "../lib/config.ts";
import { AstraError, Code, Errno, unavailable } from "../lib/errors.ts";
import { checkHealth, GrpcTransport } from "../lib/grpc.ts";
import { type Client, client } from "../lib/rpc.ts";
import { BLOCK_SIZE, FileBlockDevice } from "../services/storage/lfsx/blockdev.ts";
import { Volume } from "../services/storage/lfsx/volume.ts";
import { DEFAULT_VOLUME, hostFileError, lockImage } from "../services/storage/lfsx_service.ts";

export const KV_USAGE = `  kv put KEY VALUE | get KEY | del KEY [--volume NAME] [--endpoint ADDR]
        write, read or delete one key of a running system's LFSX store (volume ${DEFAULT_VOLUME})
  kv scan [START] [END] [--limit N] [--reverse] [--volume NAME] [--endpoint ADDR]
        keys in [START, END) in order (or reverse), as KEY<TAB>VALUE lines, from one snapshot
  kv load --count N [--prefix P] [--volume NAME] [--endpoint ADDR]
        commit N keys, one durable transaction each, printing "committed KEY" after each commit
        is acknowledged; retries through a restart of the storage service
  mkfs --image FILE [--size S] [--journal-blocks N] [--label L]
        format an LFSX volume on an image file (created or replaced with --size, e.g. 256M)
  mkfs --device NAME [--journal-blocks N] [--label L] [--endpoint ADDR]
        format an LFSX volume on a block device of a running system (nvme0n1, sda; not mounted)
  fsck --image FILE | --device NAME [--endpoint ADDR]
        check an LFSX image offline, or an unmounted block device of a running system; exits 1
        when anything is wrong`;

type Lfsx = Client<typeof LfsxService>;

const CALL_TIMEOUT_MS = 10_000;
/** `kv load` keeps retrying a key this long while the service is unreachable or aborts it. */
const LOAD_RETRY_MS = 60_000;
const SCAN_PAGE = 1000;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Bytes as one line of text: UTF-8 as is, other bytes, tabs, newlines and backslashes escaped. */
function shown(bytes: Uint8Array): string {
  if (bytes.every((b) => b >= 0x20 && b !== 0x7f && b !== 0x5c)) {
    try {
      return utf8.decode(bytes);
    } catch {
      // not UTF-8: escaped byte by byte below
    }
  }
  let out = "";
  for (const b of bytes) {
    if (b === 0x5c) out += "\\\\";
    else if (b === 0x09) out += "\\t";
    else if (b === 0x0a) out += "\\n";
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/**
 * The storage endpoint: --endpoint or ASTRA_ENDPOINT, else the embedded gateway, else the storage
 * service's own port — the first whose LfsxService health answers.
 */
async function connect(explicit: string | undefined): Promise<{ lfsx: Lfsx; close(): void }> {
  const chosen = explicit ?? readEnv("ASTRA_ENDPOINT");
  const candidates = chosen ? [chosen] : [DEFAULT_GATEWAY_ADDRESS, `127.0.0.1:${DEFAULT_PORTS.storage}`];
  for (const address of candidates) {
    try {
      await checkHealth(address, LfsxService.typeName, 2000);
    } catch (err) {
      if (err instanceof AstraError && err.code === Code.UNAVAILABLE) continue;
      throw err;
    }
    const transport = new GrpcTransport(address, { maxAttempts: 1 });
    return { lfsx: client(LfsxService, transport, "astra-kv"), close: () => transport.close() };
  }
  throw unavailable(
    `nothing answered at ${candidates.join(" or ")}: is the system booted? try ./astra boot`,
    Errno.ECONNREFUSED,
  );
}

/** Puts or deletes one key in its own transaction; returns the commit version, or undefined if there was nothing to delete. */
async function writeOne(lfsx: Lfsx, volume: string, key: Uint8Array, value: Uint8Array | null) {
  const opts = { timeoutMs: CALL_TIMEOUT_MS };
  const { transactionId } = await lfsx.begin({ volume }, opts);
  try {
    if (value === null) {
      const { found } = await lfsx.delete({ transactionId, key }, opts);
      if (!found) {
        await lfsx.abort({ transactionId }, opts);
        return undefined;
      }
    } else {
      await lfsx.put({ transactionId, key, value }, opts);
    }
    return (await lfsx.commit({ transactionId }, opts)).version;
  } catch (err) {
    // Give its locks back at once rather than when the service notices this client is gone.
    if (!(err instanceof AstraError && err.code === Code.ABORTED)) {
      await lfsx.abort({ transactionId }, { timeoutMs: 2000 }).catch(() => {});
    }
    throw err;
  }
}

function isRetryable(err: unknown): boolean {
  return err instanceof AstraError &&
    (err.code === Code.UNAVAILABLE || err.code === Code.ABORTED || err.code === Code.DEADLINE_EXCEEDED);
}

async function load(lfsx: Lfsx, volume: string, count: number, prefix: string): Promise<number> {
  const width = Math.max(8, String(count - 1).length);
  for (let i = 0; i < count; i++) {
    const key = `${prefix}${String(i).padStart(width, "0")}`;
    const failingSince = Date.now();
    for (let attempt = 1;; attempt++) {
      try {
        await writeOne(lfsx, volume, encoder.encode(key), encoder.encode(`value ${i} of ${key}`));
        break;
      } catch (err) {
        if (!isRetryable(err) || Date.now() - failingSince > LOAD_RETRY_MS) throw err;
        if (attempt === 1) console.error(`retrying ${key}: ${(err as AstraError).describe()}`);
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(attempt, 5))));
      }
    }
    console.log(`committed ${key}`);
  }
  return 0;
}

async function scan(
  lfsx: Lfsx,
  volume: string,
  range: { start?: string; end?: string; limit: number; reverse: boolean },
): Promise<number> {
  const opts = { timeoutMs: CALL_TIMEOUT_MS };
  // One REPEATABLE READ transaction, so every page comes from the same snapshot.
  const { transactionId } = await lfsx.begin({ volume, isolation: IsolationLevel.REPEATABLE_READ }, opts);
  try {
    let left = range.limit;
    let continuation: Uint8Array = new Uint8Array();
    do {
      const page = await lfsx.scan({
        scope: { case: "transactionId", value: transactionId },
        start: encoder.encode(range.start ?? ""),
        end: encoder.encode(range.end ?? ""),
        limit: Math.min(left, SCAN_PAGE),
        direction: range.reverse ? ScanDirection.BACKWARD : ScanDirection.FORWARD,
        continuation,
      }, opts);
      for (const { key, value } of page.entries) console.log(`${shown(key)}\t${shown(value)}`);
      left -= page.entries.length;
      continuation = page.continuation;
    } while (continuation.length > 0 && left > 0);
    await lfsx.commit({ transactionId }, opts);
  } catch (err) {
    await lfsx.abort({ transactionId }, { timeoutMs: 2000 }).catch(() => {});
    throw err;
  }
  return 0;
}

function positiveInteger(text: string | undefined, flag: string): number {
  const n = Number(text);
  if (text === undefined || !Number.isSafeInteger(n) || n < 1) {
    throw new Error(`${flag} needs a positive whole number, not ${JSON.stringify(text)}`);
  }
  return n;
}

export async function kv(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      endpoint: { type: "string" },
      volume: { type: "string" },
      limit: { type: "string" },
      reverse: { type: "boolean" },
      count: { type: "string" },
      prefix: { type: "string" },
    },
  });
  const [command, ...rest] = positionals;
  const usage = (line: string) => {
    console.error(`usage: ./astra kv ${line}`);
    return 2;
  };
  const expected: Record<string, [number, number, string]> = {
    put: [2, 2, "put KEY VALUE"],
    get: [1, 1, "get KEY"],
    del: [1, 1, "del KEY"],
    scan: [0, 2, "scan [START] [END] [--limit N] [--reverse]"],
    load: [0, 0, "load --count N [--prefix P]"],
  };
  const shape = expected[command];
  if (!shape) return usage("put|get|del|scan|load ... (./astra help)");
  if (rest.length < shape[0] || rest.length > shape[1]) return usage(shape[2]);
  const volume = values.volume ?? DEFAULT_VOLUME;
  const count = command === "load" ? positiveInteger(values.count, "--count") : 0;
  const limit = values.limit === undefined ? Infinity : positiveInteger(values.limit, "--limit");
  const { lfsx, close } = await connect(values.endpoint);
  try {
    switch (command) {
      case "put": {
        const version = await writeOne(lfsx, volume, encoder.encode(rest[0]), encoder.encode(rest[1]));
        console.log(`committed ${rest[0]} (version ${version})`);
        return 0;
      }
      case "del": {
        const version = await writeOne(lfsx, volume, encoder.encode(rest[0]), null);
        if (version === undefined) {
          console.error(`no key ${rest[0]}`);
          return 1;
        }
        console.log(`deleted ${rest[0]} (version ${version})`);
        return 0;
      }
      case "get": {
        const reply = await lfsx.get(
          { scope: { case: "volume", value: volume }, key: encoder.encode(rest[0]) },
          { timeoutMs: CALL_TIMEOUT_MS },
        );
        if (!reply.found) {
          console.error(`no key ${rest[0]}`);
          return 1;
        }
        await Deno.stdout.write(reply.value);
        await Deno.stdout.write(encoder.encode("\n"));
        return 0;
      }
      case "scan":
        return await scan(lfsx, volume, { start: rest[0], end: rest[1], limit, reverse: !!values.reverse });
      default:
        return await load(lfsx, volume, count, values.prefix ?? "load-");
    }
  } finally {
    close();
  }
}

const MKFS_USAGE = "./astra mkfs --image FILE [--size S] | --device NAME [--endpoint ADDR]  " +
  "[--journal-blocks N] [--label L]";
const FSCK_USAGE = "./astra fsck --image FILE | --device NAME [--endpoint ADDR]";

/** Exactly one of --image and --device, or undefined (the caller prints its usage). */
function volumeTarget(values: { image?: string; device?: string }) {
  if ((values.image === undefined) === (values.device === undefined)) return undefined;
  return values.image !== undefined
    ? { kind: "image" as const, path: values.image }
    : { kind: "device" as const, name: values.device! };
}

function formatLine(
  where: string,
  result: {
    uuid: string;
    label: string;
    blockCount: number | bigint;
    journalBlocks: number;
    firstDataBlock: number | bigint;
  },
): string {
  return `${where}: LFSX volume ${result.uuid}${result.label ? ` "${result.label}"` : ""}, ` +
    `${result.blockCount} blocks of ${BLOCK_SIZE} bytes, journal ${result.journalBlocks} blocks, ` +
    `data from block ${result.firstDataBlock}`;
}

interface CheckSummary {
  ok: boolean;
  problems: string[];
  entries: number | bigint;
  height: number;
  leaves: number | bigint;
  internalNodes: number | bigint;
  overflowValues: number | bigint;
  overflowBlocks: number | bigint;
  usedBlocks: number | bigint;
  freeBlocks: number | bigint;
}

/** Prints a check's problems and its summary line; the exit status: 0 when clean, 1 otherwise. */
function reportCheck(where: string, report: CheckSummary): number {
  for (const problem of report.problems) console.log(`problem: ${problem}`);
  console.log(
    `${where}: ${report.ok ? "clean" : `${report.problems.length} problem(s)`}; ${report.entries} entries, ` +
      `height ${report.height}, ${report.leaves} leaves, ${report.internalNodes} internal nodes, ` +
      `${report.overflowValues} overflow values in ${report.overflowBlocks} blocks, ` +
      `${report.usedBlocks} blocks used, ${report.freeBlocks} free`,
  );
  return report.ok ? 0 : 1;
}

/**
 * `astra mkfs`: formats an LFSX volume on a host image file (offline), or on a block device of a
 * running system (its storage service formats it; the device must not be mounted).
 */
export async function mkfs(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      image: { type: "string" },
      device: { type: "string" },
      endpoint: { type: "string" },
      size: { type: "string" },
      "journal-blocks": { type: "string" },
      label: { type: "string" },
    },
  });
  const target = volumeTarget(values);
  if (!target || (target.kind === "device" && values.size !== undefined)) {
    console.error(`usage: ${MKFS_USAGE}`);
    return 2;
  }
  const journalBlocks = values["journal-blocks"] === undefined
    ? undefined
    : positiveInteger(values["journal-blocks"], "--journal-blocks");
  if (target.kind === "device") {
    const { lfsx, close } = await connect(values.endpoint);
    try {
      const result = await lfsx.format(
        { target: { target: { case: "device", value: target.name } }, journalBlocks, label: values.label },
        { timeoutMs: CALL_TIMEOUT_MS * 6 },
      );
      console.log(formatLine(target.name, result));
    } finally {
      close();
    }
    return 0;
  }
  const path = target.path;
  const blocks = values.size === undefined ? 0 : Math.floor(parseSize(values.size) / BLOCK_SIZE);
  if (values.size !== undefined && blocks < 1) {
    throw new Error(`--size ${values.size} is less than one block`);
  }
  const lock = await lockImage(path, blocks > 0, "image");
  try {
    const device = await (blocks > 0 ? FileBlockDevice.create(path, blocks) : FileBlockDevice.open(path))
      .catch((err) => {
        throw hostFileError(err, path, "image");
      });
    try {
      console.log(formatLine(path, await Volume.format(device, { journalBlocks, label: values.label })));
    } finally {
      await device.close();
    }
  } finally {
    lock.close();
  }
  return 0;
}

/**
 * `astra fsck`: checks an LFSX volume on a host image file (offline), or on an unmounted block
 * device of a running system; 0 when clean, 1 when anything is wrong.
 */
export async function fsck(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { image: { type: "string" }, device: { type: "string" }, endpoint: { type: "string" } },
  });
  const target = volumeTarget(values);
  if (!target) {
    console.error(`usage: ${FSCK_USAGE}`);
    return 2;
  }
  if (target.kind === "device") {
    const { lfsx, close } = await connect(values.endpoint);
    try {
      const report = await lfsx.fsck(
        { subject: { case: "target", value: { target: { case: "device", value: target.name } } } },
        { timeoutMs: CALL_TIMEOUT_MS * 6 },
      );
      return reportCheck(target.name, report);
    } finally {
      close();
    }
  }
  const path = target.path;
  const lock = await lockImage(path, false, "image");
  try {
    const device = await FileBlockDevice.open(path, { readOnly: true }).catch((err) => {
      throw hostFileError(err, path, "image");
    });
    try {
      return reportCheck(path, await Volume.check(device));
    } catch (err) {
      if (!(err instanceof AstraError) || err.code !== Code.DATA_LOSS) throw err;
      console.log(`problem: ${err.message}`);
      console.log(`${path}: cannot be mounted`);
      return 1;
    } finally {
      await device.close();
    }
  } finally {
    lock.close();
  }
}
