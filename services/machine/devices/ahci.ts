// An AHCI 1.3.1 host bus adapter with SATA disks, at register level. Software programs it as it
// would real silicon: generic host control (CAP, GHC, IS, PI, VS, CAP2) and per-port registers
// (PxCLB ... PxCI) through the MMIO bus; command headers, command tables (CFIS + PRDT) and the
// received-FIS area live in guest memory and are read and written by DMA. Setting a PxCI bit
// makes the port fetch that slot's command and run it on the drive — an ATA device with a
// write-back cache over a DiskImage — then post the FISes the drive answers with, set PxIS bits
// and raise the HBA's interrupt. Native command queuing (32 tags, completion by Set Device Bits),
// port and HBA reset, link power states, hot plug and injected PHY and host-bus errors follow the
// specification's register behaviour.
import { alreadyExists, AstraError, Code, Errno, invalidArgument, notFound } from "../../../lib/errors.ts";
import type { PhysicalMemory } from "../memory.ts";
import { DiskImage, DiskMediaError } from "./diskimage.ts";
import type { InterruptSink } from "./intc.ts";
import type { MmioDevice } from "./mmio.ts";

// ---- register map ----

export const AHCI_CAP = 0x00;
export const AHCI_GHC = 0x04;
export const AHCI_IS = 0x08;
export const AHCI_PI = 0x0c;
export const AHCI_VS = 0x10;
export const AHCI_CCC_CTL = 0x14;
export const AHCI_CCC_PORTS = 0x18;
export const AHCI_EM_LOC = 0x1c;
export const AHCI_EM_CTL = 0x20;
export const AHCI_CAP2 = 0x24;
export const AHCI_BOHC = 0x28;
export const AHCI_PORT_BASE = 0x100;
export const AHCI_PORT_STRIDE = 0x80;
export const AHCI_MAX_PORTS = 32;
/** Size of the ABAR: generic registers and 32 port register blocks. */
export const AHCI_MMIO_SIZE = AHCI_PORT_BASE + AHCI_MAX_PORTS * AHCI_PORT_STRIDE;
export const AHCI_VERSION = 0x0001_0301;

/** Port register offsets within a port's block. */
export const PX_CLB = 0x00;
export const PX_CLBU = 0x04;
export const PX_FB = 0x08;
export const PX_FBU = 0x0c;
export const PX_IS = 0x10;
export const PX_IE = 0x14;
export const PX_CMD = 0x18;
export const PX_TFD = 0x20;
export const PX_SIG = 0x24;
export const PX_SSTS = 0x28;
export const PX_SCTL = 0x2c;
export const PX_SERR = 0x30;
export const PX_SACT = 0x34;
export const PX_CI = 0x38;
export const PX_SNTF = 0x3c;
export const PX_FBS = 0x40;
export const PX_DEVSLP = 0x44;

export const CAP_S64A = 1 << 31;
export const CAP_SNCQ = 1 << 30;
export const CAP_SAM = 1 << 18;
export const CAP_SSC = 1 << 14;
export const CAP_PSC = 1 << 13;
const CAP_ISS_GEN3 = 3 << 20;
const CAP_NCS_32 = 31 << 8;

export const GHC_HR = 1 << 0;
export const GHC_IE = 1 << 1;
export const GHC_AE = 1 << 31;

export const PXIS_DHRS = 1 << 0;
export const PXIS_PSS = 1 << 1;
export const PXIS_DSS = 1 << 2;
export const PXIS_SDBS = 1 << 3;
export const PXIS_UFS = 1 << 4;
export const PXIS_DPS = 1 << 5;
export const PXIS_PCS = 1 << 6;
export const PXIS_PRCS = 1 << 22;
export const PXIS_IPMS = 1 << 23;
export const PXIS_OFS = 1 << 24;
export const PXIS_INFS = 1 << 26;
export const PXIS_IFS = 1 << 27;
export const PXIS_HBDS = 1 << 28;
export const PXIS_HBFS = 1 << 29;
export const PXIS_TFES = 1 << 30;
/** PxIS bits software clears by writing 1 (PCS, PRCS and UFS mirror PxSERR and clear there). */
const PXIS_RWC = 0x7d80_002f;
/** PxIE bits that exist on this HBA (no cold presence or mechanical switch interrupts). */
export const PXIE_VALID = 0x7dc0_007f;
/** Errors after which the port stops processing its command list until PxCMD.ST is cleared. */
const PXIS_FATAL = PXIS_TFES | PXIS_HBFS | PXIS_HBDS | PXIS_IFS | PXIS_OFS;

export const PXCMD_ST = 1 << 0;
export const PXCMD_SUD = 1 << 1;
export const PXCMD_POD = 1 << 2;
export const PXCMD_FRE = 1 << 4;
export const PXCMD_FR = 1 << 14;
export const PXCMD_CR = 1 << 15;
export const PXCMD_HPCP = 1 << 18;
export const PXCMD_ATAPI = 1 << 24;
export const PXCMD_DLAE = 1 << 25;
const PXCMD_CCS_SHIFT = 8;
const PXCMD_ICC_SHIFT = 28;
/** Bits software may change directly (ST and FRE have side effects handled separately). */
const PXCMD_RW = PXCMD_ST | PXCMD_FRE | PXCMD_ATAPI | PXCMD_DLAE;

export const SERR_ERR_C = 1 << 9;
export const SERR_DIAG_N = 1 << 16;
export const SERR_DIAG_I = 1 << 17;
export const SERR_DIAG_F = 1 << 25;
export const SERR_DIAG_X = 1 << 26;
const SERR_VALID = 0x07ff_0f03;

export const SSTS_DET_PRESENT = 1;
export const SSTS_DET_ESTABLISHED = 3;
export const SSTS_DET_OFFLINE = 4;
export const IPM_ACTIVE = 1;
export const IPM_PARTIAL = 2;
export const IPM_SLUMBER = 6;

export const SATA_SIGNATURE_DISK = 0x0000_0101;
/** PxTFD before any FIS arrives: the "floating" 0x7F status of no device. */
export const TFD_NO_DEVICE = 0x7f;

// ---- FIS types and ATA ----

export const FIS_H2D = 0x27;
export const FIS_D2H = 0x34;
export const FIS_DMA_SETUP = 0x41;
export const FIS_PIO_SETUP = 0x5f;
export const FIS_SDB = 0xa1;
/** Offsets of the received-FIS area. */
export const RFIS_DSFIS = 0x00;
export const RFIS_PSFIS = 0x20;
export const RFIS_RFIS = 0x40;
export const RFIS_SDBFIS = 0x58;
export const RFIS_UFIS = 0x60;

export const ATA_STATUS_ERR = 0x01;
export const ATA_STATUS_DRQ = 0x08;
export const ATA_STATUS_DSC = 0x10;
export const ATA_STATUS_DF = 0x20;
export const ATA_STATUS_DRDY = 0x40;
export const ATA_STATUS_BSY = 0x80;
export const ATA_ERROR_ABRT = 0x04;
export const ATA_ERROR_IDNF = 0x10;
export const ATA_ERROR_UNC = 0x40;
const STATUS_OK = ATA_STATUS_DRDY | ATA_STATUS_DSC;
const STATUS_ERROR = STATUS_OK | ATA_STATUS_ERR;

export const ATA_READ_DMA = 0xc8;
export const ATA_WRITE_DMA = 0xca;
export const ATA_READ_DMA_EXT = 0x25;
export const ATA_WRITE_DMA_EXT = 0x35;
export const ATA_WRITE_DMA_FUA_EXT = 0x3d;
export const ATA_READ_FPDMA_QUEUED = 0x60;
export const ATA_WRITE_FPDMA_QUEUED = 0x61;
export const ATA_FLUSH_CACHE = 0xe7;
export const ATA_FLUSH_CACHE_EXT = 0xea;
export const ATA_IDENTIFY_DEVICE = 0xec;
export const ATA_READ_NATIVE_MAX_ADDRESS = 0xf8;
export const ATA_READ_NATIVE_MAX_ADDRESS_EXT = 0x27;
export const ATA_READ_LOG_EXT = 0x2f;
export const ATA_SET_FEATURES = 0xef;
export const ATA_CHECK_POWER_MODE = 0xe5;
export const ATA_STANDBY_IMMEDIATE = 0xe0;
export const ATA_IDLE_IMMEDIATE = 0xe1;
export const ATA_STANDBY = 0xe2;
export const ATA_IDLE = 0xe3;
export const ATA_SLEEP = 0xe6;
/** The NCQ Command Error log page, read with READ LOG EXT. */
export const ATA_LOG_NCQ_ERROR = 0x10;
const ATA_LOG_DIRECTORY = 0x00;
const SET_FEATURES_ENABLE_WRITE_CACHE = 0x02;
const SET_FEATURES_TRANSFER_MODE = 0x03;
const SET_FEATURES_DISABLE_WRITE_CACHE = 0x82;
/** The control register's software-reset bit, in a control (non-command) H2D FIS. */
const ATA_CONTROL_SRST = 0x04;

const NCQ_DEPTH = 32;
const COMMAND_HEADER_BYTES = 32;
const PRDT_OFFSET = 0x80;
const PRD_BYTES = 16;
/** A PRD describes at most 4 MiB (a 22-bit byte count). */
export const PRD_MAX_BYTES = 4 * 1024 * 1024;

export interface DriveIdentity {
  /** Up to 40 ASCII characters. */
  model: string;
  /** Up to 20 ASCII characters. */
  serial: string;
  /** Up to 8 ASCII characters. */
  firmware: string;
}

function putAtaString(words: Uint16Array, first: number, count: number, text: string): void {
  // ATA strings pack two characters per word, the first in the high byte, space padded.
  const padded = text.padEnd(count * 2, " ").slice(0, count * 2);
  for (let i = 0; i < count; i++) {
    words[first + i] = (padded.charCodeAt(2 * i) << 8) | padded.charCodeAt(2 * i + 1);
  }
}

/** The 512-byte IDENTIFY DEVICE block of a SATA SSD with LBA48, NCQ (32) and a write cache. */
export function ataIdentifyBlock(
  identity: DriveIdentity,
  geometry: { lbaCount: number; lbaSize: number },
  state: { writeCacheEnabled: boolean; udmaMode: number },
): Uint8Array {
  const w = new Uint16Array(256);
  const lba28 = Math.min(geometry.lbaCount, 0x0fff_ffff);
  w[0] = 0x0040; // fixed, non-removable ATA device
  w[1] = 16383; // legacy geometry: the ">8 GB" values
  w[3] = 16;
  w[6] = 63;
  putAtaString(w, 10, 10, identity.serial);
  putAtaString(w, 23, 4, identity.firmware);
  putAtaString(w, 27, 20, identity.model);
  w[47] = 0x8010; // READ/WRITE MULTIPLE: up to 16 sectors per DRQ block
  w[49] = 0x0f00; // LBA and DMA supported, IORDY
  w[50] = 0x4000;
  w[53] = 0x0006; // words 64-70 and 88 are valid
  w[59] = 0x0110;
  w[60] = lba28 & 0xffff;
  w[61] = lba28 >>> 16;
  w[63] = 0x0007; // multiword DMA 0-2
  w[64] = 0x0003; // PIO 3-4
  w[65] = 120;
  w[66] = 120;
  w[67] = 120;
  w[68] = 120;
  w[75] = NCQ_DEPTH - 1;
  w[76] = 0x030e; // SATA gen 1-3, NCQ, host-initiated power management
  w[77] = 0x0006; // negotiated speed: gen 3
  w[80] = 0x07f0; // ATA/ATAPI-4 .. ACS-3
  w[82] = 0x0028; // supported: volatile write cache, power management
  w[83] = 0x7400; // FLUSH CACHE EXT, FLUSH CACHE, 48-bit addressing
  w[84] = 0x4060; // WRITE DMA FUA EXT, general purpose logging
  w[85] = 0x0008 | (state.writeCacheEnabled ? 0x0020 : 0);
  w[86] = 0x3400;
  w[87] = 0x4060;
  w[88] = 0x007f | (1 << (8 + state.udmaMode)); // UDMA 0-6 supported, the selected mode
  let lba48 = geometry.lbaCount;
  for (let i = 100; i <= 103; i++) {
    w[i] = lba48 % 0x10000;
    lba48 = Math.floor(lba48 / 0x10000);
  }
  if (geometry.lbaSize === 512) {
    w[106] = 0x4000;
  } else {
    w[106] = 0x5000; // logical sector longer than 256 words
    const words = geometry.lbaSize / 2;
    w[117] = words & 0xffff;
    w[118] = words >>> 16;
  }
  w[119] = 0x4000;
  w[120] = 0x4000;
  w[217] = 0x0001; // non-rotating medium
  w[222] = 0x103f; // serial transport, SATA 1.0a .. 3.1
  const bytes = new Uint8Array(w.buffer);
  bytes[510] = 0xa5;
  let sum = 0;
  for (let i = 0; i < 511; i++) sum += bytes[i];
  bytes[511] = (256 - (sum & 0xff)) & 0xff;
  return bytes;
}

function checksummedLogPage(page: Uint8Array): Uint8Array {
  let sum = 0;
  for (let i = 0; i < 511; i++) sum += page[i];
  page[511] = (256 - (sum & 0xff)) & 0xff;
  return page;
}

// ---- the drive ----

type PowerMode = "active" | "idle" | "standby" | "sleep";

interface NcqErrorRecord {
  tag: number;
  status: number;
  error: number;
  lba: number;
  count: number;
}

/** The SATA drive on a port: its disk and the ATA state a command can change. */
interface Drive {
  disk: DiskImage;
  identity: DriveIdentity;
  writeCacheEnabled: boolean;
  udmaMode: number;
  powerMode: PowerMode;
  /** SRST is asserted: the drive answers nothing until it is released. */
  inSoftReset: boolean;
  /** After an NCQ error the drive aborts queued commands until the error log is read. */
  ncqError: NcqErrorRecord | null;
}

// ---- commands ----

interface RegisterFis {
  command: number;
  features: number;
  lba: number;
  device: number;
  count: number;
  control: number;
  /** C bit: a command (true) or a control-register update (false). */
  isCommand: boolean;
}

interface Prd {
  address: number;
  length: number;
  interrupt: boolean;
}

interface FetchedCommand {
  slot: number;
  write: boolean;
  clearBusyOnOk: boolean;
  fis: RegisterFis;
  prdt: Prd[];
}

interface Outcome {
  status: number;
  error: number;
  /** LBA and count reported back in the D2H FIS (READ NATIVE MAX, failing LBA). */
  lba?: number;
  count?: number;
  /** Bytes moved through the PRDT. */
  transferred: number;
  /** Data-in by PIO (IDENTIFY, READ LOG EXT): a PIO Setup FIS answers instead of a D2H FIS. */
  pio?: boolean;
  /** PRDs with the I bit were consumed. */
  descriptorInterrupt?: boolean;
  /** The HBA itself failed the command (bad PRDT, bad pointer): PxIS error bits to set. */
  hbaError?: number;
}

function parseRegisterFis(cfis: Uint8Array): RegisterFis {
  return {
    isCommand: (cfis[1] & 0x80) !== 0,
    command: cfis[2],
    features: cfis[3] | (cfis[11] << 8),
    lba: cfis[4] + cfis[5] * 0x100 + cfis[6] * 0x1_0000 + cfis[8] * 0x100_0000 + cfis[9] * 0x1_0000_0000 +
      cfis[10] * 0x100_0000_0000,
    device: cfis[7],
    count: cfis[12] | (cfis[13] << 8),
    control: cfis[15],
  };
}

function isNcq(command: number): boolean {
  return command === ATA_READ_FPDMA_QUEUED || command === ATA_WRITE_FPDMA_QUEUED;
}

// ---- ports ----

interface Port {
  index: number;
  clb: number;
  clbu: number;
  fb: number;
  fbu: number;
  /** The RWC bits of PxIS; PCS, PRCS and UFS are derived from PxSERR when read. */
  is: number;
  ie: number;
  cmd: number;
  tfd: number;
  sig: number;
  ssts: number;
  sctl: number;
  serr: number;
  sact: number;
  ci: number;
  drive: Drive | null;
  /** PxCI bits already fetched by the HBA. */
  fetched: number;
  /** The non-queued command on the wire, or null. */
  runningSlot: number | null;
  /** Queued commands accepted and not yet completed (tags). */
  ncqActive: number;
  /** A fatal error stopped command processing until ST is cleared. */
  halted: boolean;
  /** Bumped whenever in-flight commands are abandoned, so their late completions are dropped. */
  generation: number;
  /** The slot of an SRST assertion still waiting for the release, or null. */
  softResetSlot: number | null;
  /** The link dropped on a PHY error: presence stays detected, communication is lost. */
  phyFault: boolean;
}

/** Everything an HBA reset returns to its reset value; PxCLB/PxFB survive it (AHCI 10.4.3). */
function portResetState() {
  return {
    is: 0,
    ie: 0,
    cmd: PXCMD_SUD | PXCMD_POD | PXCMD_HPCP,
    tfd: TFD_NO_DEVICE,
    sig: 0xffff_ffff,
    ssts: 0,
    sctl: 0,
    serr: 0,
    sact: 0,
    ci: 0,
    fetched: 0,
    runningSlot: null as number | null,
    ncqActive: 0,
    halted: false,
    softResetSlot: null as number | null,
    phyFault: false,
  };
}

export interface AhciOptions {
  memory: PhysicalMemory;
  interrupts: InterruptSink;
  irq: number;
  /** Implemented ports, 1..32: ports 0..ports-1. */
  ports: number;
  /** Disks present at power-on: their links come up with the HBA, without hot-plug events. */
  disks?: { port: number; disk: DiskImage; identity?: Partial<DriveIdentity> }[];
}

export interface AttachOptions {
  identity?: Partial<DriveIdentity>;
}

export interface AhciPortStatus {
  port: number;
  attached: boolean;
  linkUp: boolean;
  /** PxSSTS.IPM: 0 none, 1 active, 2 partial, 6 slumber. */
  interfacePowerState: number;
  drivePowerMode: PowerMode | null;
  writeCacheEnabled: boolean | null;
  running: boolean;
  halted: boolean;
  commandsIssued: number;
  commandsCompleted: number;
  commandErrors: number;
}

export interface AhciStatistics {
  interruptsRaised: number;
  commandsCompleted: number;
  commandErrors: number;
  hbaResets: number;
  portResets: number;
}

export class AhciHba implements MmioDevice {
  readonly portCount: number;
  readonly #memory: PhysicalMemory;
  readonly #interrupts: InterruptSink;
  readonly #irq: number;
  readonly #cap: number;
  readonly #pi: number;
  #ghc = GHC_AE;
  #is = 0;
  readonly #ports: Port[] = [];
  readonly #inflight = new Set<Promise<void>>();
  /** Every disk ever plugged in: commands stalled on one may still be in flight. */
  readonly #disks = new Set<DiskImage>();
  readonly #perPort: { issued: number; completed: number; errors: number }[] = [];
  readonly #stats: AhciStatistics = {
    interruptsRaised: 0,
    commandsCompleted: 0,
    commandErrors: 0,
    hbaResets: 0,
    portResets: 0,
  };

  constructor(options: AhciOptions) {
    if (!Number.isInteger(options.ports) || options.ports < 1 || options.ports > AHCI_MAX_PORTS) {
      throw invalidArgument("ports", `an AHCI HBA has 1..${AHCI_MAX_PORTS} ports, not ${options.ports}`);
    }
    this.portCount = options.ports;
    this.#memory = options.memory;
    this.#interrupts = options.interrupts;
    this.#irq = options.irq;
    this.#cap = (CAP_S64A | CAP_SNCQ | CAP_ISS_GEN3 | CAP_SAM | CAP_SSC | CAP_PSC | CAP_NCS_32 |
      (options.ports - 1)) >>> 0;
    this.#pi = options.ports === 32 ? 0xffff_ffff : (1 << options.ports) - 1;
    for (let i = 0; i < options.ports; i++) {
      const port: Port = {
        index: i,
        clb: 0,
        clbu: 0,
        fb: 0,
        fbu: 0,
        drive: null,
        generation: 0,
        ...portResetState(),
      };
      this.#ports.push(port);
      this.#perPort.push({ issued: 0, completed: 0, errors: 0 });
    }
    for (const { port, disk, identity } of options.disks ?? []) {
      this.#plug(this.#port(port), disk, identity);
      this.#linkUp(this.#ports[port]);
    }
  }

  // ---- hot plug and faults ----

  /** Plugs a disk into a port at run time: the link comes up and PxIS.PCS/PRCS are raised. */
  attach(portIndex: number, disk: DiskImage, options: AttachOptions = {}): void {
    const port = this.#port(portIndex);
    this.#plug(port, disk, options.identity);
    // COMINIT from the new device (X) and PhyRdy going up (N).
    port.serr = (port.serr | SERR_DIAG_X | SERR_DIAG_N) >>> 0;
    this.#linkUp(port);
    this.#signal();
  }

  #plug(port: Port, disk: DiskImage, identity: Partial<DriveIdentity> = {}): void {
    if (port.drive) {
      throw alreadyExists("port", `AHCI port ${port.index} already has a disk`, Errno.EBUSY);
    }
    this.#disks.add(disk);
    port.drive = {
      disk,
      identity: {
        model: identity.model ?? "AstraLisp SATA SSD",
        serial: identity.serial ?? `ASTRA-SATA-${String(port.index).padStart(2, "0")}`,
        firmware: identity.firmware ?? "1.0",
      },
      writeCacheEnabled: true,
      udmaMode: 6,
      powerMode: "active",
      inSoftReset: false,
      ncqError: null,
    };
    port.phyFault = false;
  }

  /**
   * Unplugs the disk. Clean by default (its cache is flushed first); `surprise` pulls it with
   * commands in flight, which fail, and its cache is lost. Returns the disk.
   */
  async detach(portIndex: number, options: { surprise?: boolean } = {}): Promise<DiskImage> {
    const port = this.#port(portIndex);
    const drive = port.drive;
    if (!drive) throw notFound("port", `AHCI port ${portIndex} has no disk`, Errno.ENODEV);
    if (options.surprise) drive.disk.surpriseRemove();
    else await drive.disk.flush();
    if (port.drive !== drive) return drive.disk;
    port.drive = null;
    this.#linkLost(port, SERR_DIAG_N);
    port.sig = 0xffff_ffff;
    port.tfd = TFD_NO_DEVICE;
    port.ssts = 0;
    this.#signal();
    return drive.disk;
  }

  /** The link drops with a PHY error: PxSERR.ERR.C and DIAG.I/N, PxIS.PRCS; a COMRESET recovers. */
  injectPhyError(portIndex: number): void {
    const port = this.#port(portIndex);
    port.phyFault = true;
    this.#linkLost(port, SERR_ERR_C | SERR_DIAG_I | SERR_DIAG_N);
    if (port.drive) port.ssts = SSTS_DET_PRESENT;
    this.#signal();
  }

  /** A host bus fatal error on every running port (PxIS.HBFS): they halt until restarted. */
  injectHostBusError(): void {
    for (const port of this.#ports) {
      if (!(port.cmd & PXCMD_ST)) continue;
      this.#abandonInflight(port);
      this.#setInterrupt(port, PXIS_HBFS);
    }
    this.#signal();
  }

  portStatus(portIndex: number): AhciPortStatus {
    const port = this.#port(portIndex);
    const counts = this.#perPort[portIndex];
    return {
      port: portIndex,
      attached: port.drive !== null,
      linkUp: (port.ssts & 0xf) === SSTS_DET_ESTABLISHED,
      interfacePowerState: (port.ssts >>> 8) & 0xf,
      drivePowerMode: port.drive?.powerMode ?? null,
      writeCacheEnabled: port.drive?.writeCacheEnabled ?? null,
      running: (port.cmd & PXCMD_CR) !== 0,
      halted: port.halted,
      commandsIssued: counts.issued,
      commandsCompleted: counts.completed,
      commandErrors: counts.errors,
    };
  }

  disk(portIndex: number): DiskImage | null {
    return this.#port(portIndex).drive?.disk ?? null;
  }

  statistics(): AhciStatistics {
    return { ...this.#stats };
  }

  /** Resolves once every command in flight has completed, except those stalled on a disk fault. */
  async idle(): Promise<void> {
    while (this.#inflight.size > this.#stalledOnDisks()) {
      await Promise.race([...this.#inflight]);
    }
  }

  #stalledOnDisks(): number {
    let n = 0;
    for (const disk of this.#disks) n += disk.stalledCommands;
    return n;
  }

  // ---- registers ----

  readRegister(offset: number): number {
    if (offset < AHCI_PORT_BASE) {
      switch (offset) {
        case AHCI_CAP:
          return this.#cap;
        case AHCI_GHC:
          return this.#ghc >>> 0;
        case AHCI_IS:
          return this.#is >>> 0;
        case AHCI_PI:
          return this.#pi >>> 0;
        case AHCI_VS:
          return AHCI_VERSION;
        default:
          // CCC, enclosure management, CAP2, BOHC: none of those features exist here.
          return 0;
      }
    }
    const index = Math.floor((offset - AHCI_PORT_BASE) / AHCI_PORT_STRIDE);
    if (index >= this.portCount) return 0;
    const port = this.#ports[index];
    switch ((offset - AHCI_PORT_BASE) % AHCI_PORT_STRIDE) {
      case PX_CLB:
        return port.clb;
      case PX_CLBU:
        return port.clbu;
      case PX_FB:
        return port.fb;
      case PX_FBU:
        return port.fbu;
      case PX_IS:
        return this.#portIs(port);
      case PX_IE:
        return port.ie >>> 0;
      case PX_CMD:
        return port.cmd >>> 0;
      case PX_TFD:
        return port.tfd;
      case PX_SIG:
        return port.sig >>> 0;
      case PX_SSTS:
        return port.ssts;
      case PX_SCTL:
        return port.sctl;
      case PX_SERR:
        return port.serr >>> 0;
      case PX_SACT:
        return port.sact >>> 0;
      case PX_CI:
        return port.ci >>> 0;
      default:
        return 0;
    }
  }

  writeRegister(offset: number, value: number, mask: number): void {
    if (offset < AHCI_PORT_BASE) {
      this.#writeGeneric(offset, value & mask, mask);
      return;
    }
    const index = Math.floor((offset - AHCI_PORT_BASE) / AHCI_PORT_STRIDE);
    if (index >= this.portCount) return;
    this.#writePort(this.#ports[index], (offset - AHCI_PORT_BASE) % AHCI_PORT_STRIDE, value & mask, mask);
  }

  #writeGeneric(offset: number, bits: number, mask: number): void {
    if (offset === AHCI_GHC) {
      if (bits & GHC_HR) {
        this.#hbaReset();
        return;
      }
      const wasEnabled = (this.#ghc & GHC_IE) !== 0;
      this.#ghc = ((this.#ghc & ~(GHC_IE & mask)) | (bits & GHC_IE) | GHC_AE) >>> 0;
      if (!wasEnabled) this.#signal(true);
    } else if (offset === AHCI_IS) {
      this.#is = (this.#is & ~bits) >>> 0;
      this.#signal(true);
    }
  }

  #writePort(port: Port, register: number, bits: number, mask: number): void {
    const merge = (old: number) => ((old & ~mask) | bits) >>> 0;
    switch (register) {
      case PX_CLB:
        port.clb = (merge(port.clb) & ~0x3ff) >>> 0;
        return;
      case PX_CLBU:
        port.clbu = merge(port.clbu);
        return;
      case PX_FB:
        port.fb = (merge(port.fb) & ~0xff) >>> 0;
        return;
      case PX_FBU:
        port.fbu = merge(port.fbu);
        return;
      case PX_IS:
        port.is = (port.is & ~(bits & PXIS_RWC)) >>> 0;
        this.#signal();
        return;
      case PX_IE: {
        const before = port.ie;
        port.ie = merge(port.ie) & PXIE_VALID;
        if (port.ie & ~before & this.#portIs(port)) this.#signal();
        return;
      }
      case PX_CMD:
        this.#writeCmd(port, merge(port.cmd));
        return;
      case PX_SCTL:
        this.#writeSctl(port, merge(port.sctl) & 0xfff);
        return;
      case PX_SERR:
        port.serr = (port.serr & ~(bits & SERR_VALID)) >>> 0;
        return;
      case PX_SACT:
        if (port.cmd & PXCMD_ST) port.sact = (port.sact | bits) >>> 0;
        return;
      case PX_CI:
        if (!(port.cmd & PXCMD_ST)) return;
        port.ci = (port.ci | bits) >>> 0;
        this.#pump(port);
        return;
      default:
        return;
    }
  }

  #writeCmd(port: Port, requested: number): void {
    const old = port.cmd;
    let next = (old & ~PXCMD_RW) | (requested & PXCMD_RW);
    // FRE may not be cleared while the command list runs.
    if ((old & PXCMD_ST) && (requested & PXCMD_ST)) next |= old & PXCMD_FRE;
    next = next & ~PXCMD_FR | ((next & PXCMD_FRE) ? PXCMD_FR : 0);
    const starting = !(old & PXCMD_ST) && (next & PXCMD_ST);
    const stopping = (old & PXCMD_ST) && !(next & PXCMD_ST);
    if (starting) {
      next |= PXCMD_CR;
      next &= ~(0x1f << PXCMD_CCS_SHIFT);
      port.halted = false;
    }
    port.cmd = next >>> 0;
    if (stopping) this.#stopCommandList(port);
    const icc = (requested >>> PXCMD_ICC_SHIFT) & 0xf;
    if (icc !== 0) this.#interfacePowerRequest(port, icc);
    if (starting) this.#pump(port);
  }

  #writeSctl(port: Port, sctl: number): void {
    const oldDet = port.sctl & 0xf;
    const det = sctl & 0xf;
    port.sctl = sctl;
    if (det === 1 && oldDet !== 1) {
      // COMRESET asserted: the link is down and the drive busy until it is released.
      this.#stats.portResets++;
      this.#abandonInflight(port);
      port.ci = 0;
      port.sact = 0;
      port.fetched = 0;
      port.ssts = 0;
      port.tfd = ATA_STATUS_BSY | TFD_NO_DEVICE;
      port.sig = 0xffff_ffff;
    } else if (det === 0 && oldDet === 1) {
      port.phyFault = false;
      if (port.drive) {
        port.serr = (port.serr | SERR_DIAG_X) >>> 0;
        this.#linkUp(port);
        this.#signal();
      } else {
        port.tfd = TFD_NO_DEVICE;
      }
    } else if (det === 4) {
      this.#abandonInflight(port);
      port.ssts = SSTS_DET_OFFLINE;
    } else if (det === 0 && oldDet === 4) {
      if (port.drive && !port.phyFault) this.#linkUp(port);
    }
  }

  #interfacePowerRequest(port: Port, icc: number): void {
    if ((port.ssts & 0xf) !== SSTS_DET_ESTABLISHED) return;
    const restrictions = (port.sctl >>> 8) & 0xf;
    let ipm: number;
    if (icc === 1) ipm = IPM_ACTIVE;
    else if (icc === 2 && (this.#cap & CAP_PSC) && !(restrictions & 1)) ipm = IPM_PARTIAL;
    else if (icc === 6 && (this.#cap & CAP_SSC) && !(restrictions & 2)) ipm = IPM_SLUMBER;
    else return;
    port.ssts = (port.ssts & ~0xf00) | (ipm << 8);
  }

  // ---- resets and link ----

  #hbaReset(): void {
    this.#stats.hbaResets++;
    this.#ghc = GHC_AE;
    this.#is = 0;
    for (const port of this.#ports) {
      this.#abandonInflight(port);
      Object.assign(port, portResetState());
      // Without staggered spin-up the HBA resets every port's link itself.
      if (port.drive) this.#linkUp(port);
    }
  }

  /** The link is established and the drive sends its signature D2H FIS. */
  #linkUp(port: Port): void {
    const drive = port.drive!;
    const speedLimit = (port.sctl >>> 4) & 0xf;
    const speed = speedLimit === 0 ? 3 : Math.min(speedLimit, 3);
    port.ssts = (IPM_ACTIVE << 8) | (speed << 4) | SSTS_DET_ESTABLISHED;
    drive.inSoftReset = false;
    drive.ncqError = null;
    drive.powerMode = "active";
    port.sig = SATA_SIGNATURE_DISK;
    this.#postD2h(port, { status: STATUS_OK, error: 0x01, lba: 0x000001, count: 1, interrupt: false });
  }

  /** The link goes down: in-flight commands are lost; PxIS.IFS if any were outstanding. */
  #linkLost(port: Port, serrBits: number): void {
    const busy = port.ci !== 0 || port.sact !== 0;
    this.#abandonInflight(port);
    port.ssts = 0;
    port.serr = (port.serr | serrBits) >>> 0;
    if (busy && (port.cmd & PXCMD_ST)) this.#setInterrupt(port, PXIS_IFS);
  }

  #stopCommandList(port: Port): void {
    this.#abandonInflight(port);
    port.ci = 0;
    port.sact = 0;
    port.fetched = 0;
    port.halted = false;
    port.cmd = (port.cmd & ~(PXCMD_CR | (0x1f << PXCMD_CCS_SHIFT))) >>> 0;
  }

  #abandonInflight(port: Port): void {
    port.generation++;
    port.runningSlot = null;
    port.ncqActive = 0;
    port.softResetSlot = null;
  }

  // ---- interrupts ----

  #portIs(port: Port): number {
    let v = port.is;
    if (port.serr & SERR_DIAG_N) v |= PXIS_PRCS;
    if (port.serr & SERR_DIAG_X) v |= PXIS_PCS;
    if (port.serr & SERR_DIAG_F) v |= PXIS_UFS;
    return v >>> 0;
  }

  #setInterrupt(port: Port, bits: number): void {
    port.is = (port.is | bits) >>> 0;
    if (bits & PXIS_FATAL) port.halted = true;
  }

  /**
   * Recomputes IS from the ports (a port with an enabled PxIS bit sets its IS bit again, even
   * right after software cleared it) and sends an interrupt, message-style, when an IS bit goes
   * from 0 to 1 — or on `rearm`, when software has just cleared IS or enabled interrupts and
   * something is still pending, so nothing pending is ever left unsignalled.
   */
  #signal(rearm = false): void {
    const before = this.#is;
    for (const port of this.#ports) {
      if (this.#portIs(port) & port.ie) this.#is = (this.#is | (1 << port.index)) >>> 0;
    }
    const risen = this.#is & ~before;
    if ((this.#ghc & GHC_IE) && this.#is !== 0 && (risen !== 0 || rearm)) {
      this.#stats.interruptsRaised++;
      this.#interrupts.raise(this.#irq);
    }
  }

  // ---- FIS posting ----

  #fisBase(port: Port): number {
    return port.fbu * 0x1_0000_0000 + port.fb;
  }

  #postFis(port: Port, offset: number, fis: Uint8Array): void {
    if (!(port.cmd & PXCMD_FRE)) return;
    try {
      this.#memory.write(this.#fisBase(port) + offset, fis);
    } catch {
      this.#setInterrupt(port, PXIS_HBFS);
    }
  }

  #postD2h(
    port: Port,
    r: { status: number; error: number; lba?: number; count?: number; interrupt: boolean },
  ): void {
    const fis = new Uint8Array(20);
    const lba = r.lba ?? 0;
    fis[0] = FIS_D2H;
    fis[1] = r.interrupt ? 0x40 : 0;
    fis[2] = r.status;
    fis[3] = r.error;
    fis[4] = lba & 0xff;
    fis[5] = (lba >>> 8) & 0xff;
    fis[6] = (lba >>> 16) & 0xff;
    fis[7] = 0x40;
    fis[8] = Math.floor(lba / 0x100_0000) & 0xff;
    fis[9] = Math.floor(lba / 0x1_0000_0000) & 0xff;
    fis[10] = Math.floor(lba / 0x100_0000_0000) & 0xff;
    fis[12] = (r.count ?? 0) & 0xff;
    fis[13] = ((r.count ?? 0) >>> 8) & 0xff;
    this.#postFis(port, RFIS_RFIS, fis);
    port.tfd = (r.error << 8) | r.status;
    if (r.interrupt) this.#setInterrupt(port, PXIS_DHRS);
    if (r.status & ATA_STATUS_ERR) this.#setInterrupt(port, PXIS_TFES);
  }

  #postPioSetup(port: Port, r: { status: number; error: number; transfer: number }): void {
    const fis = new Uint8Array(20);
    fis[0] = FIS_PIO_SETUP;
    fis[1] = 0x40 | 0x20; // interrupt, device-to-host
    fis[2] = ATA_STATUS_DRDY | ATA_STATUS_DSC | ATA_STATUS_DRQ;
    fis[3] = r.error;
    fis[15] = r.status; // E_Status: the status once the data has gone
    fis[16] = r.transfer & 0xff;
    fis[17] = (r.transfer >>> 8) & 0xff;
    this.#postFis(port, RFIS_PSFIS, fis);
    port.tfd = (r.error << 8) | r.status;
    this.#setInterrupt(port, PXIS_PSS);
    if (r.status & ATA_STATUS_ERR) this.#setInterrupt(port, PXIS_TFES);
  }

  #postDmaSetup(port: Port, tag: number, bytes: number, toHost: boolean): void {
    const fis = new Uint8Array(28);
    fis[0] = FIS_DMA_SETUP;
    fis[1] = (toHost ? 0x20 : 0) | 0x80; // direction, auto-activate
    fis[4] = tag;
    new DataView(fis.buffer).setUint32(20, bytes, true);
    this.#postFis(port, RFIS_DSFIS, fis);
  }

  #postSdb(port: Port, r: { status: number; error: number; completed: number }): void {
    const fis = new Uint8Array(8);
    fis[0] = FIS_SDB;
    fis[1] = 0x40;
    fis[2] = r.status & 0x77;
    fis[3] = r.error;
    new DataView(fis.buffer).setUint32(4, r.completed >>> 0, true);
    this.#postFis(port, RFIS_SDBFIS, fis);
    port.sact = (port.sact & ~r.completed) >>> 0;
    port.tfd = (r.error << 8) | (port.tfd & 0x88) | (r.status & 0x77);
    this.#setInterrupt(port, PXIS_SDBS);
    if (r.status & ATA_STATUS_ERR) this.#setInterrupt(port, PXIS_TFES);
  }

  // ---- command processing ----

  /** Fetches and starts every issued command the port may start now. */
  #pump(port: Port): void {
    if (!(port.cmd & PXCMD_ST) || port.halted) return;
    const drive = port.drive;
    if (!drive || (port.ssts & 0xf) !== SSTS_DET_ESTABLISHED) return;
    for (let slot = 0; slot < 32; slot++) {
      const bit = (1 << slot) >>> 0;
      if (!(port.ci & bit) || (port.fetched & bit)) continue;
      if (port.runningSlot !== null) return;
      let command: FetchedCommand;
      try {
        command = this.#fetch(port, slot);
      } catch {
        this.#setInterrupt(port, PXIS_HBFS);
        this.#signal();
        return;
      }
      if (((port.ssts >>> 8) & 0xf) !== IPM_ACTIVE) port.ssts = (port.ssts & ~0xf00) | (IPM_ACTIVE << 8);
      if (!command.fis.isCommand) {
        port.fetched |= bit;
        this.#control(port, command);
        continue;
      }
      // A sleeping drive, or one held in reset, answers no command until it is reset.
      if (drive.inSoftReset || drive.powerMode === "sleep") return;
      if (isNcq(command.fis.command)) {
        port.fetched |= bit;
        this.#perPort[port.index].issued++;
        this.#startQueued(port, command);
        continue;
      }
      if (port.ncqActive !== 0) return;
      port.fetched |= bit;
      port.runningSlot = slot;
      port.cmd = ((port.cmd & ~(0x1f << PXCMD_CCS_SHIFT)) | (slot << PXCMD_CCS_SHIFT)) >>> 0;
      this.#perPort[port.index].issued++;
      this.#track(this.#runNonQueued(port, command));
      return;
    }
  }

  #track(work: Promise<void>): void {
    this.#inflight.add(work);
    const done = () => this.#inflight.delete(work);
    work.then(done, done);
  }

  #fetch(port: Port, slot: number): FetchedCommand {
    const headerAddress = port.clbu * 0x1_0000_0000 + port.clb + slot * COMMAND_HEADER_BYTES;
    const header = new DataView(this.#memory.read(headerAddress, COMMAND_HEADER_BYTES).buffer);
    const flags = header.getUint32(0, true);
    const prdtl = flags >>> 16;
    const table = header.getUint32(12, true) * 0x1_0000_0000 + ((header.getUint32(8, true) & ~0x7f) >>> 0);
    const cfis = this.#memory.read(table, 64);
    const prdtBytes = prdtl === 0
      ? new Uint8Array(0)
      : this.#memory.read(table + PRDT_OFFSET, prdtl * PRD_BYTES);
    const prdView = new DataView(prdtBytes.buffer);
    const prdt: Prd[] = [];
    for (let i = 0; i < prdtl; i++) {
      const at = i * PRD_BYTES;
      const dbc = prdView.getUint32(at + 12, true);
      prdt.push({
        address: prdView.getUint32(at + 4, true) * 0x1_0000_0000 + ((prdView.getUint32(at, true) & ~1) >>> 0),
        length: (dbc & 0x3f_ffff) + 1,
        interrupt: (dbc & 0x8000_0000) !== 0,
      });
    }
    return {
      slot,
      write: (flags & (1 << 6)) !== 0,
      clearBusyOnOk: (flags & (1 << 10)) !== 0,
      fis: parseRegisterFis(cfis),
      prdt,
    };
  }

  /** A control FIS: asserting SRST resets the drive; releasing it makes it send its signature. */
  #control(port: Port, command: FetchedCommand): void {
    const drive = port.drive!;
    const bit = (1 << command.slot) >>> 0;
    if (command.fis.control & ATA_CONTROL_SRST) {
      this.#abandonInflight(port);
      drive.inSoftReset = true;
      port.tfd = ATA_STATUS_BSY;
      if (command.clearBusyOnOk) {
        port.ci = (port.ci & ~bit) >>> 0;
        port.fetched = (port.fetched & ~bit) >>> 0;
        port.tfd = 0;
      } else {
        port.softResetSlot = command.slot;
      }
      return;
    }
    let done = bit;
    if (port.softResetSlot !== null) done |= 1 << port.softResetSlot;
    port.softResetSlot = null;
    port.ci = (port.ci & ~done) >>> 0;
    port.fetched = (port.fetched & ~done) >>> 0;
    if (drive.inSoftReset) {
      port.sig = SATA_SIGNATURE_DISK;
      drive.inSoftReset = false;
      drive.ncqError = null;
      drive.powerMode = "active";
      this.#postD2h(port, { status: STATUS_OK, error: 0x01, lba: 1, count: 1, interrupt: true });
    }
    this.#signal();
  }

  async #runNonQueued(port: Port, command: FetchedCommand): Promise<void> {
    const generation = port.generation;
    const drive = port.drive!;
    let outcome: Outcome;
    try {
      outcome = await this.#execute(port, drive, command, generation);
    } catch (err) {
      if (port.generation !== generation) return;
      outcome = this.#failure(err, command);
    }
    if (port.generation !== generation) return;
    const bit = (1 << command.slot) >>> 0;
    port.runningSlot = null;
    const counts = this.#perPort[port.index];
    if (outcome.hbaError) {
      counts.errors++;
      this.#stats.commandErrors++;
      this.#setInterrupt(port, outcome.hbaError);
      this.#signal();
      return;
    }
    this.#writePrdbc(port, command.slot, outcome.transferred);
    if (outcome.descriptorInterrupt) this.#setInterrupt(port, PXIS_DPS);
    if (outcome.pio) {
      this.#postPioSetup(port, {
        status: outcome.status,
        error: outcome.error,
        transfer: outcome.transferred,
      });
    } else {
      this.#postD2h(port, {
        status: outcome.status,
        error: outcome.error,
        lba: outcome.lba,
        count: outcome.count,
        interrupt: true,
      });
    }
    if (outcome.status & ATA_STATUS_ERR) {
      // The failed slot stays in PxCI (PxCMD.CCS names it) until software stops the port.
      counts.errors++;
      this.#stats.commandErrors++;
    } else {
      port.ci = (port.ci & ~bit) >>> 0;
      port.fetched = (port.fetched & ~bit) >>> 0;
      counts.completed++;
      this.#stats.commandsCompleted++;
    }
    this.#signal();
    this.#pump(port);
  }

  #startQueued(port: Port, command: FetchedCommand): void {
    const drive = port.drive!;
    const bit = (1 << command.slot) >>> 0;
    // The drive accepts the command: a D2H FIS with BSY clear and no interrupt releases PxCI.
    port.ci = (port.ci & ~bit) >>> 0;
    port.fetched = (port.fetched & ~bit) >>> 0;
    if (drive.ncqError) {
      // In the NCQ error state the drive aborts queued commands at once.
      this.#postD2h(port, { status: STATUS_ERROR, error: ATA_ERROR_ABRT, interrupt: true });
      this.#perPort[port.index].errors++;
      this.#stats.commandErrors++;
      this.#signal();
      return;
    }
    this.#postD2h(port, { status: STATUS_OK, error: 0, interrupt: false });
    port.ncqActive = (port.ncqActive | bit) >>> 0;
    this.#track(this.#runQueued(port, command));
  }

  async #runQueued(port: Port, command: FetchedCommand): Promise<void> {
    const generation = port.generation;
    const drive = port.drive!;
    const tag = command.slot;
    const bit = (1 << tag) >>> 0;
    let outcome: Outcome;
    try {
      outcome = await this.#execute(port, drive, command, generation);
    } catch (err) {
      if (port.generation !== generation) return;
      outcome = this.#failure(err, command);
    }
    if (port.generation !== generation || !(port.ncqActive & bit)) return;
    port.ncqActive = (port.ncqActive & ~bit) >>> 0;
    const counts = this.#perPort[port.index];
    if (outcome.hbaError) {
      counts.errors++;
      this.#stats.commandErrors++;
      this.#abandonInflight(port);
      this.#setInterrupt(port, outcome.hbaError);
      this.#signal();
      return;
    }
    if (outcome.descriptorInterrupt) this.#setInterrupt(port, PXIS_DPS);
    if (outcome.status & ATA_STATUS_ERR) {
      // The drive records the error for READ LOG EXT 10h and drops every other queued command.
      const count = command.fis.features === 0 ? 65536 : command.fis.features;
      drive.ncqError = {
        tag,
        status: outcome.status,
        error: outcome.error,
        lba: outcome.lba ?? command.fis.lba,
        count,
      };
      this.#abandonInflight(port);
      this.#postSdb(port, { status: outcome.status, error: outcome.error, completed: 0 });
      counts.errors++;
      this.#stats.commandErrors++;
    } else {
      this.#postSdb(port, { status: outcome.status, error: 0, completed: bit });
      counts.completed++;
      this.#stats.commandsCompleted++;
    }
    this.#signal();
    this.#pump(port);
  }

  #writePrdbc(port: Port, slot: number, bytes: number): void {
    const headerAddress = port.clbu * 0x1_0000_0000 + port.clb + slot * COMMAND_HEADER_BYTES;
    const field = new Uint8Array(4);
    new DataView(field.buffer).setUint32(0, bytes, true);
    try {
      this.#memory.write(headerAddress + 4, field);
    } catch {
      this.#setInterrupt(port, PXIS_HBFS);
    }
  }

  /** A thrown error as the drive's answer: media errors carry the failing LBA. */
  #failure(err: unknown, command: FetchedCommand): Outcome {
    if (err instanceof DiskMediaError) {
      return {
        status: STATUS_ERROR | (err.operation === "write" ? ATA_STATUS_DF : 0),
        error: err.operation === "write" ? ATA_ERROR_ABRT : ATA_ERROR_UNC,
        lba: err.lba,
        transferred: 0,
      };
    }
    if (err instanceof AstraError && err.errno === Errno.EFAULT) {
      return { status: 0, error: 0, transferred: 0, hbaError: PXIS_HBFS };
    }
    // The disk went away or failed otherwise: the drive aborts the command.
    return { status: STATUS_ERROR, error: ATA_ERROR_ABRT, lba: command.fis.lba, transferred: 0 };
  }

  async #execute(port: Port, drive: Drive, command: FetchedCommand, generation: number): Promise<Outcome> {
    const fis = command.fis;
    const disk = drive.disk;
    switch (fis.command) {
      case ATA_IDENTIFY_DEVICE: {
        const block = ataIdentifyBlock(drive.identity, disk, drive);
        return this.#dataIn(command, block, { pio: true });
      }
      case ATA_READ_DMA:
      case ATA_READ_DMA_EXT:
      case ATA_READ_FPDMA_QUEUED:
      case ATA_WRITE_DMA:
      case ATA_WRITE_DMA_EXT:
      case ATA_WRITE_DMA_FUA_EXT:
      case ATA_WRITE_FPDMA_QUEUED:
        return await this.#transfer(port, drive, command, generation);
      case ATA_FLUSH_CACHE:
      case ATA_FLUSH_CACHE_EXT:
        await disk.flush();
        return { status: STATUS_OK, error: 0, transferred: 0 };
      case ATA_READ_NATIVE_MAX_ADDRESS:
        return { status: STATUS_OK, error: 0, lba: Math.min(disk.lbaCount - 1, 0x0fff_ffff), transferred: 0 };
      case ATA_READ_NATIVE_MAX_ADDRESS_EXT:
        return { status: STATUS_OK, error: 0, lba: disk.lbaCount - 1, transferred: 0 };
      case ATA_READ_LOG_EXT:
        return this.#readLog(drive, command);
      case ATA_SET_FEATURES:
        return this.#setFeatures(drive, fis);
      case ATA_CHECK_POWER_MODE:
        return {
          status: STATUS_OK,
          error: 0,
          count: drive.powerMode === "standby" ? 0x00 : drive.powerMode === "idle" ? 0x80 : 0xff,
          transferred: 0,
        };
      case ATA_IDLE:
      case ATA_IDLE_IMMEDIATE:
        drive.powerMode = "idle";
        return { status: STATUS_OK, error: 0, transferred: 0 };
      case ATA_STANDBY:
      case ATA_STANDBY_IMMEDIATE:
        // Spinning down writes the cache back, as a drive does before it stops.
        await disk.flush();
        drive.powerMode = "standby";
        return { status: STATUS_OK, error: 0, transferred: 0 };
      case ATA_SLEEP:
        await disk.flush();
        drive.powerMode = "sleep";
        return { status: STATUS_OK, error: 0, transferred: 0 };
      default:
        return { status: STATUS_ERROR, error: ATA_ERROR_ABRT, transferred: 0 };
    }
  }

  async #transfer(port: Port, drive: Drive, command: FetchedCommand, generation: number): Promise<Outcome> {
    const fis = command.fis;
    const disk = drive.disk;
    const queued = isNcq(fis.command);
    const lba48 = fis.command !== ATA_READ_DMA && fis.command !== ATA_WRITE_DMA;
    const write = fis.command === ATA_WRITE_DMA || fis.command === ATA_WRITE_DMA_EXT ||
      fis.command === ATA_WRITE_DMA_FUA_EXT || fis.command === ATA_WRITE_FPDMA_QUEUED;
    let count: number;
    let lba: number;
    if (queued) {
      count = fis.features === 0 ? 65536 : fis.features;
      lba = fis.lba;
    } else if (lba48) {
      count = fis.count === 0 ? 65536 : fis.count;
      lba = fis.lba;
    } else {
      count = (fis.count & 0xff) === 0 ? 256 : fis.count & 0xff;
      lba = (fis.lba & 0xff_ffff) + (fis.device & 0x0f) * 0x100_0000;
    }
    if (lba + count > disk.lbaCount) {
      return { status: STATUS_ERROR, error: ATA_ERROR_IDNF, lba, transferred: 0 };
    }
    // A media access spins an idle or standby drive back up.
    drive.powerMode = "active";
    const bytes = count * disk.lbaSize;
    if (write) {
      const gathered = this.#gather(command.prdt, bytes);
      if (gathered === null) return { status: STATUS_ERROR, error: ATA_ERROR_ABRT, lba, transferred: 0 };
      const fua = !drive.writeCacheEnabled || fis.command === ATA_WRITE_DMA_FUA_EXT ||
        (queued && (fis.device & 0x80) !== 0);
      if (queued) this.#postDmaSetup(port, command.slot, bytes, false);
      await disk.write(lba, gathered.data, { fua });
      return { status: STATUS_OK, error: 0, transferred: bytes, descriptorInterrupt: gathered.interrupt };
    }
    const data = await disk.read(lba, count);
    // A reset while the read was on the medium: the buffer may belong to someone else now.
    if (port.generation !== generation) return { status: STATUS_OK, error: 0, transferred: 0 };
    if (queued) this.#postDmaSetup(port, command.slot, bytes, true);
    return this.#dataIn(command, data, {});
  }

  /** Scatters device-to-host data through the PRDT. */
  #dataIn(command: FetchedCommand, data: Uint8Array, options: { pio?: boolean }): Outcome {
    let done = 0;
    let interrupt = false;
    for (const prd of command.prdt) {
      if (done >= data.length) break;
      const n = Math.min(prd.length, data.length - done);
      this.#memory.write(prd.address, data.subarray(done, done + n));
      done += n;
      if (prd.interrupt) interrupt = true;
    }
    if (done < data.length) {
      // The drive sent more than the PRDT can hold.
      return { status: 0, error: 0, transferred: done, hbaError: PXIS_OFS };
    }
    return {
      status: STATUS_OK,
      error: 0,
      transferred: done,
      pio: options.pio,
      descriptorInterrupt: interrupt,
    };
  }

  /** Gathers host-to-device data from the PRDT, or null when it describes too few bytes. */
  #gather(prdt: Prd[], bytes: number): { data: Uint8Array; interrupt: boolean } | null {
    const data = new Uint8Array(bytes);
    let done = 0;
    let interrupt = false;
    for (const prd of prdt) {
      if (done >= bytes) break;
      const n = Math.min(prd.length, bytes - done);
      data.set(this.#memory.read(prd.address, n), done);
      done += n;
      if (prd.interrupt) interrupt = true;
    }
    return done < bytes ? null : { data, interrupt };
  }

  #readLog(drive: Drive, command: FetchedCommand): Outcome {
    const fis = command.fis;
    const log = fis.lba & 0xff;
    const page = Math.floor(fis.lba / 0x100) & 0xffff;
    const pages = fis.count === 0 ? 65536 : fis.count;
    const out = new Uint8Array(pages * 512);
    if (log === ATA_LOG_DIRECTORY && page === 0) {
      out[0] = 0x01; // directory version 1
      out[ATA_LOG_NCQ_ERROR * 2] = 1; // the NCQ error log is one page
    } else if (log === ATA_LOG_NCQ_ERROR && page === 0) {
      const record = drive.ncqError;
      if (record) {
        out[0] = record.tag & 0x1f;
        out[2] = record.status;
        out[3] = record.error;
        out[4] = record.lba & 0xff;
        out[5] = (record.lba >>> 8) & 0xff;
        out[6] = (record.lba >>> 16) & 0xff;
        out[7] = 0x40;
        out[8] = Math.floor(record.lba / 0x100_0000) & 0xff;
        out[9] = Math.floor(record.lba / 0x1_0000_0000) & 0xff;
        out[10] = Math.floor(record.lba / 0x100_0000_0000) & 0xff;
        out[12] = record.count & 0xff;
        out[13] = (record.count >>> 8) & 0xff;
      }
      checksummedLogPage(out.subarray(0, 512));
      drive.ncqError = null;
    } else {
      return { status: STATUS_ERROR, error: ATA_ERROR_ABRT, transferred: 0 };
    }
    return this.#dataIn(command, out, { pio: true });
  }

  #setFeatures(drive: Drive, fis: RegisterFis): Outcome {
    switch (fis.features & 0xff) {
      case SET_FEATURES_ENABLE_WRITE_CACHE:
        drive.writeCacheEnabled = true;
        break;
      case SET_FEATURES_DISABLE_WRITE_CACHE:
        drive.writeCacheEnabled = false;
        break;
      case SET_FEATURES_TRANSFER_MODE: {
        const mode = fis.count & 0xff;
        // Only UDMA modes 0-6 (0x40 | mode) are accepted: this drive does DMA only.
        if ((mode & 0xf8) !== 0x40 || (mode & 7) > 6) {
          return { status: STATUS_ERROR, error: ATA_ERROR_ABRT, transferred: 0 };
        }
        drive.udmaMode = mode & 7;
        break;
      }
      default:
        return { status: STATUS_ERROR, error: ATA_ERROR_ABRT, transferred: 0 };
    }
    return { status: STATUS_OK, error: 0, transferred: 0 };
  }

  #port(index: number): Port {
    if (!Number.isInteger(index) || index < 0 || index >= this.portCount) {
      throw new AstraError(
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        `no AHCI port ${index} (the HBA has ${this.portCount})`,
        {
          argument: "port",
        },
      );
    }
    return this.#ports[index];
  }
}
