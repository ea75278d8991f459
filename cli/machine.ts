// `astra machine`: the machine's disks and injected faults, through MachineService, as an operator
// plugs and pulls disks and makes them fail.
//
//   astra machine disk list                              the attached disks, their caches and faults
//   astra machine disk attach LOCATION [--image PATH] [--size SIZE] [--lba-size 512|4096]
//   astra machine disk detach LOCATION [--surprise]
//   astra machine fault inject KIND LOCATION [--lba FIRST] [--blocks N] [--count N]
//   astra machine fault clear [LOCATION] [--id ID]
//
// LOCATION is ahci:PORT or nvme:NSID (a controller fault names just ahci or nvme). Each takes
// --endpoint HOST:PORT (or ASTRA_ENDPOINT); without one it tries the embedded system's gateway,
// then the machine service's own port. A failed call prints its gRPC status and errno detail and
// exits 1; bad usage exits 2.
import {
  DiskController,
  type DiskInfo,
  type DiskLocation,
  FaultKind,
} from "../gen/astra/machine/v1/devices_pb.ts";
import { MachineService } from "../gen/astra/machine/v1/machine_pb.ts";
import { parseSize } from "../lib/config.ts";
import { type Client, client } from "../lib/rpc.ts";
import { withEndpoint } from "./endpoint.ts";
import { sizeText, table } from "./format.ts";
import { runSubcommand, UsageError, wholeNumber } from "./subcommand.ts";

const USAGE = `usage: ./astra machine <command> [--endpoint HOST:PORT]

  disk list
        the attached disks with their write-back caches, counters and injected faults
  disk attach LOCATION [--image PATH] [--size SIZE] [--lba-size 512|4096]
        attach a disk image (created sparse at SIZE if missing; default: the location's own image
        in the data folder) at an AHCI port or as an NVMe namespace: a hot plug
  disk detach LOCATION [--surprise]
        detach a disk, its cache flushed first, or pulled out at once with --surprise
  fault inject KIND LOCATION [--lba FIRST] [--blocks N] [--count N]
        make a disk or controller fail; KIND is one of
          media-error       commands touching LBAs FIRST..FIRST+N-1 fail (default N: 1)
          timeout           commands touching those LBAs never complete
          phy-error         the AHCI port's link fails (COMRESET recovers it)
          surprise-removal  the disk is pulled out with commands in flight
          controller-fatal  the controller (LOCATION: ahci or nvme) reports a fatal status
        --count N fails only the next N matching commands (a transient fault)
  fault clear [LOCATION] [--id ID]
        remove injected media errors and timeouts: one fault, a disk's, or every disk's

LOCATION is ahci:PORT or nvme:NSID, e.g. ahci:2 or nvme:1.
`;

type Machine = Client<typeof MachineService>;

const FAULT_KINDS: Record<string, FaultKind> = {
  "media-error": FaultKind.MEDIA_ERROR,
  timeout: FaultKind.COMMAND_TIMEOUT,
  "phy-error": FaultKind.PHY_ERROR,
  "surprise-removal": FaultKind.SURPRISE_REMOVAL,
  "controller-fatal": FaultKind.CONTROLLER_FATAL,
};

/** ahci:PORT, nvme:NSID, or (where a controller is enough) ahci or nvme alone. */
function location(
  text: string | undefined,
  controllerOnly = false,
): { controller: DiskController; port?: number; namespaceId?: number } {
  const m = /^(ahci|nvme)(?::(\d+))?$/.exec(text ?? "");
  if (!m || (!controllerOnly && m[2] === undefined)) {
    throw new UsageError(
      `${JSON.stringify(text ?? "")} is not a ${
        controllerOnly ? "controller (ahci or nvme)" : "location"
      }; ` +
        "use ahci:PORT or nvme:NSID",
    );
  }
  const controller = m[1] === "ahci" ? DiskController.AHCI : DiskController.NVME;
  if (m[2] === undefined) return { controller };
  return controller === DiskController.AHCI
    ? { controller, port: Number(m[2]) }
    : { controller, namespaceId: Number(m[2]) };
}

function locationText(l: DiskLocation | undefined): string {
  if (!l) return "?";
  return l.controller === DiskController.AHCI ? `ahci:${l.port}` : `nvme:${l.namespaceId}`;
}

function size(text: string | undefined): bigint {
  if (text === undefined) return 0n;
  try {
    return BigInt(parseSize(text));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function diskRows(disks: DiskInfo[]): string[][] {
  return [
    ["LOCATION", "SIZE", "LBA", "UNFLUSHED", "READS", "WRITES", "FLUSHES", "ERRORS", "FAULTS", "IMAGE"],
    ...disks.map((d) => [
      locationText(d.location),
      sizeText(d.sizeBytes),
      String(d.lbaSize),
      `${d.unflushedWrites} (${sizeText(d.unflushedBytes)})`,
      String(d.reads),
      String(d.writes),
      String(d.flushes),
      String(d.errors),
      d.faults.length === 0
        ? "-"
        : d.faults.map((f) =>
          `#${f.faultId} ${f.kind === FaultKind.MEDIA_ERROR ? "media-error" : "timeout"} ` +
          `${f.lbaFirst}+${f.lbaCount}${f.remaining > 0 ? ` x${f.remaining}` : ""}`
        ).join(", "),
      d.imagePath,
    ]),
  ];
}

interface Flags {
  image?: string;
  size?: string;
  "lba-size"?: string;
  surprise?: boolean;
  lba?: string;
  blocks?: string;
  count?: string;
  id?: string;
}

async function disk(machine: Machine, args: string[], flags: Flags): Promise<void> {
  const [verb, where] = args;
  switch (verb) {
    case "list": {
      const { disks } = await machine.listDisks({});
      console.log(disks.length === 0 ? "no disks attached" : table(diskRows(disks)));
      return;
    }
    case "attach": {
      const at = location(where);
      const lbaSize = flags["lba-size"] === undefined
        ? 0
        : Number(wholeNumber(flags["lba-size"], "--lba-size"));
      const { disk } = await machine.attachDisk({
        location: at,
        imagePath: flags.image ?? "",
        sizeBytes: size(flags.size),
        lbaSize,
      });
      console.log(
        `attached ${locationText(disk!.location)}: ${sizeText(disk!.sizeBytes)}, ${
          disk!.lbaSize
        }-byte blocks, ` +
          disk!.imagePath,
      );
      return;
    }
    case "detach": {
      const at = location(where);
      const done = await machine.detachDisk({ location: at, surprise: flags.surprise ?? false });
      console.log(
        flags.surprise
          ? `pulled ${where} out: ${done.writesLost} unflushed write(s) lost`
          : `detached ${where}: ${done.writesFlushed} unflushed write(s) flushed first`,
      );
      return;
    }
    default:
      throw new UsageError(`disk takes list, attach or detach, not ${JSON.stringify(verb ?? "")}`);
  }
}

async function fault(machine: Machine, args: string[], flags: Flags): Promise<void> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "inject": {
      const [kindText, where] = rest;
      const kind = FAULT_KINDS[kindText ?? ""];
      if (kind === undefined) {
        throw new UsageError(
          `fault kind must be one of ${Object.keys(FAULT_KINDS).join(", ")}, not ${kindText}`,
        );
      }
      const ranged = kind === FaultKind.MEDIA_ERROR || kind === FaultKind.COMMAND_TIMEOUT;
      if (!ranged && (flags.lba !== undefined || flags.blocks !== undefined)) {
        throw new UsageError(`--lba and --blocks are for media-error and timeout, not ${kindText}`);
      }
      const { faultId } = await machine.injectFault({
        location: location(where, kind === FaultKind.CONTROLLER_FATAL),
        kind,
        lbaFirst: ranged ? wholeNumber(flags.lba ?? "0", "--lba") : 0n,
        lbaCount: ranged ? wholeNumber(flags.blocks ?? "1", "--blocks") : 0n,
        count: flags.count === undefined ? 0 : Number(wholeNumber(flags.count, "--count")),
      });
      console.log(`fault ${faultId}: ${kindText} on ${where}`);
      return;
    }
    case "clear": {
      const [where] = rest;
      const { cleared } = await machine.clearFaults({
        location: where === undefined ? undefined : location(where),
        faultId: flags.id === undefined ? 0n : wholeNumber(flags.id, "--id"),
      });
      console.log(`cleared ${cleared} fault(s)`);
      return;
    }
    default:
      throw new UsageError(`fault takes inject or clear, not ${JSON.stringify(verb ?? "")}`);
  }
}

/** The `astra machine` command; returns the process exit code. */
export function machineCommand(args: string[]): Promise<number> {
  return runSubcommand(
    args,
    {
      endpoint: { type: "string" },
      image: { type: "string" },
      size: { type: "string" },
      "lba-size": { type: "string" },
      surprise: { type: "boolean" },
      lba: { type: "string" },
      blocks: { type: "string" },
      count: { type: "string" },
      id: { type: "string" },
    },
    USAGE,
    (command, rest, values) => {
      let run: (machine: Machine) => Promise<void>;
      switch (command) {
        case "disk":
          run = (machine) => disk(machine, rest, values);
          break;
        case "fault":
          run = (machine) => fault(machine, rest, values);
          break;
        default:
          throw new UsageError(`unknown machine command ${JSON.stringify(command)}`);
      }
      return withEndpoint(
        "machine",
        values.endpoint,
        (transport) => run(client(MachineService, transport, "cli")),
      );
    },
  );
}
