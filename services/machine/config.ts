// The machine's device configuration: how many AHCI ports the HBA has, which SATA disks and NVMe
// namespaces are present at power-on, and their sizes and logical block sizes. Disks live as image
// files in the data folder (disks/sata<port>.img, disks/nvme0n<namespace>.img), created sparse on
// first power-on and reopened on every later one, so their data survives restarts.
//
// Set through the environment (every way of running the machine passes it on) or, for the
// standalone machine process, the flags of the same name:
//
//   ASTRA_AHCI_PORTS=4            --ahci-ports 4          implemented HBA ports, 1..32
//   ASTRA_SATA_DISKS=64M,64M      --sata-disks 64M,64M    disks on ports 0, 1, ...
//   ASTRA_NVME_NAMESPACES=64M:512,64M:4096                namespaces 1, 2, ...
//                                 --nvme-namespaces ...
//
// A disk is SIZE[:LBA_SIZE] (LBA size 512 or 4096, default 512), optionally placed with INDEX=
// ("2=1G:4096" is a 1 GiB 4 KiB-sector disk on port 2, or namespace 2); "none" means no disks.
// An image reopened at another size than configured stops the boot with the reason.
import { parseSize, readEnv } from "../../lib/config.ts";
import { AHCI_MAX_PORTS } from "./devices/ahci.ts";
import type { LbaSize } from "./devices/diskimage.ts";

/** Namespace IDs the NVMe controller offers (Identify Controller NN). */
export const NVME_MAX_NAMESPACES = 16;
/** The largest disk the machine creates: sparse files of any size cost nothing, but stay sane. */
export const MAX_DISK_BYTES = 64 * 1024 ** 4;

export interface DiskSpec {
  sizeBytes: number;
  lbaSize: LbaSize;
}

export interface SataDiskSpec extends DiskSpec {
  port: number;
}

export interface NvmeNamespaceSpec extends DiskSpec {
  namespaceId: number;
}

export interface DeviceConfig {
  ahciPorts: number;
  sataDisks: SataDiskSpec[];
  nvmeNamespaces: NvmeNamespaceSpec[];
}

export const DEFAULT_DEVICE_CONFIG: DeviceConfig = {
  ahciPorts: 4,
  sataDisks: [
    { port: 0, sizeBytes: 64 * 1024 ** 2, lbaSize: 512 },
    { port: 1, sizeBytes: 64 * 1024 ** 2, lbaSize: 512 },
  ],
  nvmeNamespaces: [
    { namespaceId: 1, sizeBytes: 64 * 1024 ** 2, lbaSize: 512 },
    { namespaceId: 2, sizeBytes: 64 * 1024 ** 2, lbaSize: 4096 },
  ],
};

/** The flags (without dashes) and environment variables that configure the devices. */
export const DEVICE_SETTINGS = {
  "ahci-ports": "ASTRA_AHCI_PORTS",
  "sata-disks": "ASTRA_SATA_DISKS",
  "nvme-namespaces": "ASTRA_NVME_NAMESPACES",
} as const;

export type DeviceFlag = keyof typeof DEVICE_SETTINGS;

/** Checks a disk's geometry; returns why it is unusable, or null. */
export function diskSpecProblem(sizeBytes: number, lbaSize: number): string | null {
  if (lbaSize !== 512 && lbaSize !== 4096) return `the LBA size must be 512 or 4096, not ${lbaSize}`;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % lbaSize !== 0) {
    return `a disk of ${sizeBytes} bytes is not a positive multiple of its ${lbaSize}-byte blocks`;
  }
  if (sizeBytes > MAX_DISK_BYTES) return `a disk of ${sizeBytes} bytes is above the 64 TiB limit`;
  return null;
}

/** "64M,2=1G:4096" → disks at indexes 0 and 2; `first` is the index of the first entry. */
function parseDisks(
  setting: string,
  text: string,
  first: number,
  last: number,
): (DiskSpec & { index: number })[] {
  if (text.trim() === "none") return [];
  const disks: (DiskSpec & { index: number })[] = [];
  let next = first;
  for (const entry of text.split(",").map((e) => e.trim())) {
    const m = /^(?:(\d+)=)?([^:]+)(?::(\d+))?$/.exec(entry);
    if (!m) throw new Error(`${setting}: "${entry}" is not [INDEX=]SIZE[:LBA_SIZE]`);
    const index = m[1] === undefined ? next : Number(m[1]);
    const sizeBytes = parseSize(m[2]);
    const lbaSize = m[3] === undefined ? 512 : Number(m[3]);
    if (index < first || index > last) {
      throw new Error(`${setting}: index ${index} is not in ${first}..${last}`);
    }
    if (disks.some((d) => d.index === index)) throw new Error(`${setting}: index ${index} is given twice`);
    const problem = diskSpecProblem(sizeBytes, lbaSize);
    if (problem) throw new Error(`${setting}: "${entry}": ${problem}`);
    disks.push({ index, sizeBytes, lbaSize: lbaSize as LbaSize });
    next = index + 1;
  }
  return disks;
}

/** The device configuration from flags (taking precedence) and the environment, over the defaults. */
export function deviceConfigFrom(flags: Partial<Record<DeviceFlag, string>> = {}): DeviceConfig {
  const pick = (flag: DeviceFlag) => flags[flag] ?? readEnv(DEVICE_SETTINGS[flag]);
  const portsText = pick("ahci-ports");
  const ahciPorts = portsText === undefined ? DEFAULT_DEVICE_CONFIG.ahciPorts : Number(portsText);
  if (!Number.isInteger(ahciPorts) || ahciPorts < 1 || ahciPorts > AHCI_MAX_PORTS) {
    throw new Error(`--ahci-ports must be 1..${AHCI_MAX_PORTS}, not ${portsText}`);
  }
  const sataText = pick("sata-disks");
  const sataDisks = sataText === undefined
    ? DEFAULT_DEVICE_CONFIG.sataDisks.filter((d) => d.port < ahciPorts)
    : parseDisks("--sata-disks", sataText, 0, ahciPorts - 1).map(({ index, ...d }) => ({
      port: index,
      ...d,
    }));
  const nvmeText = pick("nvme-namespaces");
  const nvmeNamespaces = nvmeText === undefined
    ? DEFAULT_DEVICE_CONFIG.nvmeNamespaces
    : parseDisks("--nvme-namespaces", nvmeText, 1, NVME_MAX_NAMESPACES).map(({ index, ...d }) => ({
      namespaceId: index,
      ...d,
    }));
  return { ahciPorts, sataDisks, nvmeNamespaces };
}
