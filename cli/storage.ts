// `astra storage`: the block devices of a running system, through BlockService.
//
//   astra storage devices                  the disks the drivers found, with their identify data
//   astra storage read DEV LBA COUNT       COUNT blocks from LBA, raw, on stdout
//   astra storage write DEV LBA [--fua]    stdin (whole blocks) to the device from LBA
//
// Each takes --endpoint HOST:PORT (or ASTRA_ENDPOINT); without one it tries the embedded system's
// gateway, then the storage service's own port.
import { type BlockDevice, BlockService, DeviceDriver } from "../gen/astra/storage/v1/block_pb.ts";
import { invalidArgument } from "../lib/errors.ts";
import { type Client, client } from "../lib/rpc.ts";
import { withEndpoint } from "./endpoint.ts";
import { sizeText, table } from "./format.ts";
import { runSubcommand, UsageError, wholeNumber } from "./subcommand.ts";

const USAGE = `usage: ./astra storage <command> [--endpoint HOST:PORT]

  devices                      list the block devices with their identify data
  read DEV LBA COUNT > FILE    read COUNT blocks from LBA of DEV (e.g. sda, nvme0n1) to stdout
  write DEV LBA [--fua] < FILE write stdin, a whole number of blocks, to DEV from LBA
`;

/** Bytes per request: well inside the 16 MiB message limit with the request's other fields. */
const CHUNK_BYTES = 8 * 1024 * 1024;

type Block = Client<typeof BlockService>;

/** Runs `fn` with BlockService at the first endpoint that answers. */
function withBlockService<T>(explicit: string | undefined, fn: (block: Block) => Promise<T>): Promise<T> {
  return withEndpoint("storage", explicit, (transport) => fn(client(BlockService, transport, "cli")));
}

function deviceRows(devices: BlockDevice[]): string[][] {
  const header = [
    "NAME",
    "DRIVER",
    "SIZE",
    "BLOCK",
    "BLOCKS",
    "WHERE",
    "QD",
    "CACHE",
    "MODEL",
    "SERIAL",
    "FIRMWARE",
  ];
  return [
    header,
    ...devices.map((d) => [
      d.name,
      d.driver === DeviceDriver.AHCI ? "ahci" : d.driver === DeviceDriver.NVME ? "nvme" : "?",
      sizeText(d.sizeBytes),
      String(d.blockSize),
      String(d.blockCount),
      d.driver === DeviceDriver.AHCI
        ? `port ${d.portOrNamespace}`
        : `nvme${d.nvmeController} ns ${d.portOrNamespace}`,
      String(d.queueDepth),
      d.volatileWriteCache ? "write-back" : "write-through",
      d.model,
      d.serial,
      d.firmware,
    ]),
  ];
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    parts.push(chunk);
    total += chunk.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function writeAll(data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await Deno.stdout.write(data.subarray(done));
}

async function devices(endpoint: string | undefined): Promise<void> {
  const { devices } = await withBlockService(endpoint, (block) => block.listDevices({}));
  if (devices.length === 0) {
    console.log("no block devices");
    return;
  }
  console.log(table(deviceRows(devices)));
}

async function read(endpoint: string | undefined, args: string[]): Promise<void> {
  const [device, lbaText, countText] = args;
  if (!device) throw new UsageError("read needs DEV LBA COUNT");
  const lba = wholeNumber(lbaText, "LBA");
  const count = wholeNumber(countText, "COUNT");
  if (count === 0n) throw new UsageError("COUNT must be at least 1");
  if (Deno.stdout.isTerminal()) throw new UsageError("read writes raw blocks: redirect stdout to a file");
  await withBlockService(endpoint, async (block) => {
    const { device: info } = await block.identifyDevice({ device });
    const perRequest = BigInt(Math.max(1, Math.floor(CHUNK_BYTES / info!.blockSize)));
    for (let done = 0n; done < count;) {
      const n = count - done < perRequest ? count - done : perRequest;
      const { data } = await block.readBlocks({ device, lba: lba + done, count: Number(n) });
      await writeAll(data);
      done += n;
    }
  });
}

async function write(endpoint: string | undefined, args: string[], fua: boolean): Promise<void> {
  const [device, lbaText] = args;
  if (!device) throw new UsageError("write needs DEV LBA, and the data on stdin");
  const lba = wholeNumber(lbaText, "LBA");
  const data = await readAll(Deno.stdin.readable);
  await withBlockService(endpoint, async (block) => {
    const { device: info } = await block.identifyDevice({ device });
    const blockSize = info!.blockSize;
    if (data.length === 0 || data.length % blockSize !== 0) {
      throw invalidArgument(
        "data",
        `${device} takes whole ${blockSize}-byte blocks; stdin had ${data.length} bytes`,
      );
    }
    const chunk = Math.max(blockSize, Math.floor(CHUNK_BYTES / blockSize) * blockSize);
    let written = 0;
    for (let at = 0; at < data.length; at += chunk) {
      const part = data.subarray(at, Math.min(data.length, at + chunk));
      const reply = await block.writeBlocks({ device, lba: lba + BigInt(at / blockSize), data: part, fua });
      written += reply.blocksWritten;
    }
    console.error(`wrote ${written} block(s) of ${blockSize} bytes to ${device} from LBA ${lba}`);
  });
}

/** The `astra storage` command; returns the process exit code. */
export function storageCommand(args: string[]): Promise<number> {
  return runSubcommand(
    args,
    { endpoint: { type: "string" }, fua: { type: "boolean" } },
    USAGE,
    async (command, rest, values) => {
      switch (command) {
        case "devices":
          return await devices(values.endpoint);
        case "read":
          return await read(values.endpoint, rest);
        case "write":
          return await write(values.endpoint, rest, values.fua ?? false);
        default:
          throw new UsageError(`unknown storage command ${JSON.stringify(command)}`);
      }
    },
  );
}
