// The AHCI driver (seed 2.1). It programs an AHCI 1.3.1 host bus adapter through its registers:
// each port with a disk gets a command list, a received-FIS area and command tables in DMA
// memory; a command is a register H2D FIS plus a PRDT over its data buffer in a free slot, issued
// by setting the slot's PxCI bit (and its PxSACT bit for native command queuing). Completions are
// found from PxCI/PxSACT when the HBA interrupts. With NCQ, up to 32 commands are in flight per
// port and everything waiting is issued together; without it, one command at a time.
//
// Errors follow libata's recipe: on a task-file error the port is stopped and restarted (for NCQ,
// READ LOG EXT 10h names the failed tag and clears the drive's error state), the failed command is
// retried up to 3 times and the others are reissued; an error that persists gets a port reset
// (COMRESET) before the last try; a command that outlives its timeout gets a port reset too. Link
// changes (PxIS.PCS/PRCS) are hot plug: a new disk is started and identified, a vanished one fails
// what it had in flight and is removed; a PHY error is recovered with a COMRESET.
import { AstraError, Code, Errno, invalidArgument, notFound, outOfRange } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import type { IoEvents } from "./block.ts";
import { DmaPool } from "./dma.ts";
import {
  type ControllerInfo,
  type DmaRegion,
  type Hardware,
  hardwareError,
  type InterruptRegistration,
  type PhysicalSegment,
  readSegments,
  writeAccesses,
  writeSegments,
} from "./hardware.ts";

const log = logger("storage");

// ---- registers ----

const HBA_CAP = 0x00;
const HBA_GHC = 0x04;
const HBA_IS = 0x08;
const HBA_PI = 0x0c;
const HBA_VS = 0x10;
const PORT_BASE = 0x100;
const PORT_STRIDE = 0x80;

const PX_CLB = 0x00;
const PX_CLBU = 0x04;
const PX_FB = 0x08;
const PX_FBU = 0x0c;
const PX_IS = 0x10;
const PX_IE = 0x14;
const PX_CMD = 0x18;
const PX_TFD = 0x20;
const PX_SIG = 0x24;
const PX_SSTS = 0x28;
const PX_SCTL = 0x2c;
const PX_SERR = 0x30;
const PX_SACT = 0x34;
const PX_CI = 0x38;

const CAP_S64A = 1 << 31;
const CAP_SNCQ = 1 << 30;
const CAP_SALP = 1 << 26;
const CAP_PSC = 1 << 13;
const CAP_SSC = 1 << 14;
const GHC_HR = 1 << 0;
const GHC_IE = 1 << 1;
const GHC_AE = 1 << 31;

const PXIS_DHRS = 1 << 0;
const PXIS_PSS = 1 << 1;
const PXIS_DSS = 1 << 2;
const PXIS_SDBS = 1 << 3;
const PXIS_UFS = 1 << 4;
const PXIS_PCS = 1 << 6;
const PXIS_PRCS = 1 << 22;
const PXIS_OFS = 1 << 24;
const PXIS_INFS = 1 << 26;
const PXIS_IFS = 1 << 27;
const PXIS_HBDS = 1 << 28;
const PXIS_HBFS = 1 << 29;
const PXIS_TFES = 1 << 30;
/** Errors after which the port stops until software restarts it. */
const PXIS_ERRORS = PXIS_TFES | PXIS_HBFS | PXIS_HBDS | PXIS_IFS | PXIS_OFS | PXIS_INFS;
const PXIE_ENABLED = PXIS_DHRS | PXIS_PSS | PXIS_DSS | PXIS_SDBS | PXIS_UFS | PXIS_PCS | PXIS_PRCS |
  PXIS_ERRORS;

const PXCMD_ST = 1 << 0;
const PXCMD_FRE = 1 << 4;
const PXCMD_FR = 1 << 14;
const PXCMD_CR = 1 << 15;
const PXCMD_ICC_SHIFT = 28;
const PXCMD_CCS_SHIFT = 8;

const SSTS_DET_ESTABLISHED = 3;
const SSTS_DET_PRESENT = 1;
const SATA_SIGNATURE_DISK = 0x0000_0101;

const ATA_STATUS_ERR = 0x01;
const ATA_STATUS_DRQ = 0x08;
const ATA_STATUS_DF = 0x20;
const ATA_STATUS_BSY = 0x80;
const ATA_ERROR_ABRT = 0x04;
const ATA_ERROR_IDNF = 0x10;
const ATA_ERROR_UNC = 0x40;

// ---- ATA commands ----

export const ATA_READ_DMA = 0xc8;
export const ATA_WRITE_DMA = 0xca;
export const ATA_READ_DMA_EXT = 0x25;
export const ATA_WRITE_DMA_EXT = 0x35;
export const ATA_WRITE_DMA_FUA_EXT = 0x3d;
export const ATA_READ_FPDMA_QUEUED = 0x60;
export const ATA_WRITE_FPDMA_QUEUED = 0x61;
export const ATA_FLUSH_CACHE_EXT = 0xea;
export const ATA_IDENTIFY_DEVICE = 0xec;
export const ATA_READ_LOG_EXT = 0x2f;
const ATA_LOG_NCQ_ERROR = 0x10;

const FIS_H2D = 0x27;
const RFIS_D2H = 0x40;
const HEADER_BYTES = 32;
const FIS_AREA_BYTES = 256;
/** Tables in the port's own area hold this many PRDs; longer PRDTs get a table of their own. */
const INLINE_PRDS = 8;
const TABLE_HEADER_BYTES = 0x80;
const INLINE_TABLE_BYTES = TABLE_HEADER_BYTES + INLINE_PRDS * 16;
const SLOTS = 32;
/** Layout of a port's area: the command list, the 32 command tables right after it, the received FISes. */
const AREA_CLB = 0;
const AREA_TABLES = 0x400;
const AREA_FB = AREA_TABLES + SLOTS * INLINE_TABLE_BYTES;
const AREA_BYTES = AREA_FB + FIS_AREA_BYTES;
/** One PRD describes at most 4 MiB, an even number of bytes. */
const PRD_MAX_BYTES = 4 * 1024 * 1024;
const MAX_PRDS = 4096;

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RETRIES = 3;
const REGISTER_TIMEOUT_MS = 1000;
/** The watchdog's period at most. */
const WATCHDOG_PERIOD_MS = 50;
/**
 * A command older than this makes the watchdog look at PxCI/PxSACT: its interrupt may have been
 * lost, or interrupt delivery may be disabled, and the driver then works by polling.
 */
const POLL_AFTER_MS = 20;
const LINK_TIMEOUT_MS = 1000;

/** How reads and writes reach the disk. */
export type TransferMode = "auto" | "ncq" | "dma-ext" | "dma";

export interface AhciDriverOptions {
  /** NCQ when the drive and HBA have it, else DMA EXT, else 28-bit DMA (default auto). */
  transferMode?: TransferMode;
  commandTimeoutMs?: number;
  maxRetries?: number;
  /** Largest PRD in bytes (default 4 MiB); smaller values scatter data over more descriptors. */
  prdBytes?: number;
}

/** The identify data the driver uses, decoded from IDENTIFY DEVICE. */
export interface AtaIdentify {
  model: string;
  serial: string;
  firmware: string;
  lba48: boolean;
  lba28Sectors: number;
  lba48Sectors: number;
  /** Addressable sectors with the addressing the drive has. */
  sectors: number;
  logicalSectorBytes: number;
  physicalSectorBytes: number;
  /** NCQ queue depth, 0 without NCQ. */
  ncqDepth: number;
  writeCache: boolean;
  flushCacheExt: boolean;
  fua: boolean;
  ataMajorVersion: number;
  raw: Uint8Array;
}

/** A raw ATA command (the RPC's IssueCommand). */
export interface RawAtaCommand {
  command: number;
  features: number;
  lba: number;
  count: number;
  device: number;
  control: number;
  direction: "none" | "in" | "out";
  payload: Uint8Array;
  receiveBytes: number;
  queued: boolean;
}

export interface AtaResult {
  /** ATA status and error registers. */
  status: number;
  error: number;
  /** The LBA the device reported (the failing one, after an error). */
  lba: number;
  data: Uint8Array | null;
  transferredBytes: number;
  latencyMicros: number;
}

export type LinkPowerState = "active" | "partial" | "slumber" | "devsleep";

export interface PortStatus {
  port: number;
  devicePresent: boolean;
  powerState: LinkPowerState | null;
  commandAndStatus: number;
  taskFileData: number;
  sataStatus: number;
  sataError: number;
  interruptStatus: number;
  sataActive: number;
  commandIssue: number;
  commands: number;
  errors: number;
  retries: number;
  resets: number;
  interrupts: number;
  /** The most commands the port had in flight at once. */
  maxInflight: number;
}

export interface PortSummary {
  port: number;
  devicePresent: boolean;
  signature: number;
}

export interface AhciInitSummary {
  capabilities: number;
  version: number;
  portsImplemented: number;
  commandSlots: number;
  ncq: boolean;
  ports: PortSummary[];
}

interface FisFields {
  command: number;
  features: number;
  lba: number;
  count: number;
  device: number;
  control: number;
  isCommand: boolean;
}

interface Command {
  fis: FisFields;
  queued: boolean;
  write: boolean;
  /** The data buffer, as PRDs. */
  prds: PhysicalSegment[];
  /** What to read back on completion (data-in commands). */
  readBack: PhysicalSegment[] | null;
  /** Raw commands report their outcome as it is; the driver's own I/O retries. */
  raw: boolean;
  slot: number;
  /** Its PxCI (and PxSACT) bit has been written: from now on a clear bit means it is done. */
  issued: boolean;
  timeoutMs: number;
  deadline: number;
  submittedAt: number;
  /** Times the HBA dropped it (port stop, reset) and it was issued again. */
  reissues: number;
  /** It outlived its timeout once and was reissued after a port reset. */
  timedOut: boolean;
  table: DmaRegion | null;
  onIssue: ((slot: number) => void) | null;
  resolve: (r: AtaResult) => void;
  reject: (e: unknown) => void;
}

interface DeviceRegisters {
  status: number;
  error: number;
  lba: number;
}

/** What a command that completed without error reports: DRDY and DSC. */
const OK_REGISTERS: DeviceRegisters = { status: 0x50, error: 0, lba: 0 };

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `data` laid over the runs of a DMA buffer, as writes. */
function spread(runs: readonly DmaRegion[], data: Uint8Array): { address: number; data: Uint8Array }[] {
  const out: { address: number; data: Uint8Array }[] = [];
  let at = 0;
  for (const r of runs) {
    if (at >= data.length) break;
    out.push({ address: r.address, data: data.subarray(at, at + r.bytes) });
    at += r.bytes;
  }
  return out;
}

function ataString(raw: Uint8Array, firstWord: number, words: number): string {
  let s = "";
  for (let i = 0; i < words; i++) {
    s += String.fromCharCode(raw[(firstWord + i) * 2 + 1], raw[(firstWord + i) * 2]);
  }
  return s.trim();
}

/** Decodes the 512 bytes of IDENTIFY DEVICE. */
export function parseIdentify(raw: Uint8Array): AtaIdentify {
  const w = (i: number) => raw[i * 2] | (raw[i * 2 + 1] << 8);
  const lba48 = (w(83) & (1 << 10)) !== 0;
  const lba28Sectors = (w(60) | (w(61) << 16)) >>> 0;
  const lba48Sectors = w(100) + w(101) * 0x1_0000 + w(102) * 0x1_0000_0000 + w(103) * 0x1_0000_0000_0000;
  const w106 = w(106);
  const valid106 = (w106 & 0xc000) === 0x4000;
  const logical = valid106 && (w106 & (1 << 12)) ? (w(117) | (w(118) << 16)) * 2 : 512;
  const physical = valid106 && (w106 & (1 << 13)) ? logical << (w106 & 0xf) : logical;
  const ncq = (w(76) & (1 << 8)) !== 0;
  let major = 0;
  for (let bit = 14; bit >= 1; bit--) {
    if (w(80) !== 0xffff && (w(80) & (1 << bit))) {
      major = bit;
      break;
    }
  }
  return {
    model: ataString(raw, 27, 20),
    serial: ataString(raw, 10, 10),
    firmware: ataString(raw, 23, 4),
    lba48,
    lba28Sectors,
    lba48Sectors,
    sectors: lba48 ? lba48Sectors : lba28Sectors,
    logicalSectorBytes: logical,
    physicalSectorBytes: physical,
    ncqDepth: ncq ? (w(75) & 0x1f) + 1 : 0,
    writeCache: (w(85) & (1 << 5)) !== 0,
    flushCacheExt: (w(83) & (1 << 13)) !== 0,
    fua: (w(84) & (1 << 6)) !== 0,
    ataMajorVersion: major,
    raw: raw.slice(),
  };
}

function h2dFis(f: FisFields): Uint8Array {
  const fis = new Uint8Array(20);
  fis[0] = FIS_H2D;
  fis[1] = f.isCommand ? 0x80 : 0;
  fis[2] = f.command;
  fis[3] = f.features & 0xff;
  fis[4] = f.lba & 0xff;
  fis[5] = Math.floor(f.lba / 0x100) & 0xff;
  fis[6] = Math.floor(f.lba / 0x1_0000) & 0xff;
  fis[7] = f.device;
  fis[8] = Math.floor(f.lba / 0x100_0000) & 0xff;
  fis[9] = Math.floor(f.lba / 0x1_0000_0000) & 0xff;
  fis[10] = Math.floor(f.lba / 0x100_0000_0000) & 0xff;
  fis[11] = (f.features >>> 8) & 0xff;
  fis[12] = f.count & 0xff;
  fis[13] = (f.count >>> 8) & 0xff;
  fis[15] = f.control;
  return fis;
}

function prdtBytes(prds: readonly PhysicalSegment[]): Uint8Array {
  const out = new Uint8Array(prds.length * 16);
  const v = new DataView(out.buffer);
  prds.forEach((p, i) => {
    v.setUint32(i * 16, p.address % 0x1_0000_0000, true);
    v.setUint32(i * 16 + 4, Math.floor(p.address / 0x1_0000_0000), true);
    v.setUint32(i * 16 + 12, (p.length - 1) >>> 0, true);
  });
  return out;
}

/** A command's failed status as the error a caller sees; media errors and faults name the LBA. */
function ataError(result: AtaResult, facts: Record<string, string>): AstraError {
  const all: Record<string, string> = {
    ...facts,
    status: `0x${result.status.toString(16)}`,
    error: `0x${result.error.toString(16)}`,
  };
  let what: string;
  if (result.error & ATA_ERROR_UNC) what = "unrecovered media error";
  else if (result.error & ATA_ERROR_IDNF) what = "sector not found";
  else if (result.status & ATA_STATUS_DF) what = "device fault";
  else if (result.error & ATA_ERROR_ABRT) what = "the drive aborted the command";
  else what = "device error";
  const located = (result.error & (ATA_ERROR_UNC | ATA_ERROR_IDNF)) !== 0 ||
    (result.status & ATA_STATUS_DF) !== 0;
  if (located) all.lba = String(result.lba);
  const where = all.lba !== undefined ? ` at LBA ${all.lba}` : "";
  return new AstraError(
    Code.DATA_LOSS,
    Errno.EIO,
    `${what}${where} (status ${all.status}, error ${all.error})`,
    {
      argument: located ? "lba" : "",
      facts: all,
    },
  );
}

function timeoutError(what: string, facts: Record<string, string>): AstraError {
  return new AstraError(Code.DEADLINE_EXCEEDED, Errno.ETIMEDOUT, `${what} timed out`, { facts });
}

function goneError(port: number, reason: string): AstraError {
  return new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, `AHCI port ${port}: ${reason}`, {
    facts: { port: String(port) },
  });
}

export class AhciPort {
  /** The drive's identify data while a disk is attached and running. */
  identity: AtaIdentify | null = null;
  /** PxSIG as last detected. */
  signature = 0xffff_ffff;
  readonly #driver: AhciDriver;
  readonly #hw: Hardware;
  readonly #base: number;
  #area: DmaRegion | null = null;
  /** Shadows of the command list and the inline tables, written in spans per batch. */
  readonly #headers = new Uint8Array(SLOTS * HEADER_BYTES);
  readonly #tables = new Uint8Array(SLOTS * INLINE_TABLE_BYTES);
  #slots = SLOTS;
  /** The command engine runs (PxCMD.ST). */
  #running = false;
  /** Error recovery or a reset is under way: nothing new is issued. */
  #holding = false;
  /** Stopped by request (PortStop): requests wait until PortStart. */
  #halted = false;
  /** No disk: requests fail at once. */
  #gone = true;
  #freeSlots: number[] = [];
  readonly #inflight = new Map<number, Command>();
  #queuedInflight = 0;
  #pending: Command[] = [];
  #pumping: Promise<void> | null = null;
  /** #pump was called while a pump ran: something may have become issuable since. */
  #pumpAgain = false;
  /** Recoveries, resets and link changes, one after another. */
  #maintenance: Promise<void> = Promise.resolve();
  #checking: Promise<void> | null = null;
  #checkAgain = false;
  readonly #raw = new Map<number, Promise<AtaResult>>();
  readonly #counts = { commands: 0, errors: 0, retries: 0, resets: 0, interrupts: 0, maxInflight: 0 };

  constructor(driver: AhciDriver, hw: Hardware, readonly index: number, mmioBase: number) {
    this.#driver = driver;
    this.#hw = hw;
    this.#base = mmioBase + PORT_BASE + index * PORT_STRIDE;
  }

  get devicePresent(): boolean {
    return this.identity !== null;
  }

  /** Stopped by request until resumed. */
  get halted(): boolean {
    return this.#halted;
  }

  /** Commands the port takes at once for its disk. */
  get queueDepth(): number {
    if (!this.identity) return 0;
    return this.#useNcq() ? Math.min(this.identity.ncqDepth, this.#slots) : 1;
  }

  get areaAddress(): { commandList: number; receivedFis: number; tables: number[] } {
    const base = this.#area?.address ?? 0;
    return {
      commandList: base + AREA_CLB,
      receivedFis: base + AREA_FB,
      tables: Array.from({ length: this.#slots }, (_, s) => base + AREA_TABLES + s * INLINE_TABLE_BYTES),
    };
  }

  // ---- seed 2.1 ahci_port_init / ahci_port_start / ahci_port_stop ----

  /**
   * Allocates the command list (1 KiB aligned), received-FIS area (256 B aligned) and command
   * tables (128 B aligned) in one DMA area, points PxCLB/PxFB at them, clears the port's errors
   * and enables its interrupts.
   */
  async init(slots: number): Promise<void> {
    this.#slots = slots;
    await this.stop();
    if (!this.#area) this.#area = await this.#driver.pool.alloc(AREA_BYTES, 1024);
    const base = this.#area.address;
    this.#headers.fill(0);
    this.#tables.fill(0);
    for (let s = 0; s < SLOTS; s++) {
      const table = base + AREA_TABLES + s * INLINE_TABLE_BYTES;
      const v = new DataView(this.#headers.buffer, s * HEADER_BYTES, HEADER_BYTES);
      v.setUint32(8, table % 0x1_0000_0000, true);
      v.setUint32(12, Math.floor(table / 0x1_0000_0000), true);
    }
    await this.#hw.fillPhysical(base, this.#area.bytes, 0);
    await this.#hw.writePhysical(base + AREA_CLB, this.#headers);
    await this.#set(PX_CLB, (base + AREA_CLB) % 0x1_0000_0000);
    await this.#set(PX_CLBU, Math.floor((base + AREA_CLB) / 0x1_0000_0000));
    await this.#set(PX_FB, (base + AREA_FB) % 0x1_0000_0000);
    await this.#set(PX_FBU, Math.floor((base + AREA_FB) / 0x1_0000_0000));
    await this.#set(PX_SERR, 0xffff_ffff);
    await this.#set(PX_IS, 0xffff_ffff);
    await this.#set(PX_IE, PXIE_ENABLED);
    this.#resetSlots();
  }

  /**
   * seed 2.1 ahci_port_start for a port in use: starts it and issues what waited meanwhile
   * (and what the stop dropped).
   */
  async resume(): Promise<void> {
    await this.#maintain("start", async () => {
      if (this.#gone) throw goneError(this.index, "no disk is attached");
      if (!this.#running) {
        await this.start();
        this.#reissueInflight();
      }
      this.#halted = false;
      this.#pump();
    });
  }

  /** seed 2.1 ahci_port_stop for a port in use: stops it; requests wait until it is started again. */
  async halt(): Promise<void> {
    await this.#maintain("stop", async () => {
      this.#halted = true;
      await this.stop();
    });
  }

  /** seed 2.1 ahci_port_init for a port in use: programs its memory again and carries on. */
  async reinit(): Promise<void> {
    await this.#maintain("init", async () => {
      this.#holding = true;
      try {
        const dropped = [...this.#inflight.values()];
        await this.init(this.#slots);
        if (this.identity) {
          await this.start();
          // What the stop dropped goes back in flight to be reissued.
          for (const c of dropped) this.#inflight.set(c.slot, c);
          this.#reissueInflight();
        } else {
          for (const c of dropped) c.reject(goneError(this.index, "no disk is attached"));
        }
      } finally {
        this.#holding = false;
        this.#pump();
      }
    });
  }

  /** Starts FIS receive and then the command engine (FRE, then ST once the drive is not busy). */
  async start(): Promise<void> {
    await this.#waitRegister(PX_CMD, (cmd) => (cmd & PXCMD_CR) === 0, "the command engine to stop");
    await this.#set(PX_CMD, (await this.#get(PX_CMD)) | PXCMD_FRE);
    await this.#waitRegister(PX_CMD, (cmd) => (cmd & PXCMD_FR) !== 0, "FIS receive to start");
    await this.#waitRegister(
      PX_TFD,
      (tfd) => (tfd & (ATA_STATUS_BSY | ATA_STATUS_DRQ)) === 0,
      "the drive to leave BSY/DRQ",
    );
    await this.#set(PX_CMD, (await this.#get(PX_CMD)) | PXCMD_ST);
    this.#running = true;
    this.#pump();
  }

  /** Stops the command engine and FIS receive, waiting for CR and FR to clear. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#pumping;
    const cmd = await this.#get(PX_CMD);
    if (cmd & PXCMD_ST) await this.#set(PX_CMD, cmd & ~PXCMD_ST);
    await this.#waitRegister(PX_CMD, (c) => (c & PXCMD_CR) === 0, "the command engine to stop");
    const now = await this.#get(PX_CMD);
    if (now & PXCMD_FRE) await this.#set(PX_CMD, now & ~PXCMD_FRE);
    await this.#waitRegister(PX_CMD, (c) => (c & PXCMD_FR) === 0, "FIS receive to stop");
  }

  /** Whether a SATA disk answers on the link (PxSSTS.DET = 3, signature of a disk). */
  async detect(): Promise<PortSummary> {
    const ssts = await this.#get(PX_SSTS);
    const signature = await this.#get(PX_SIG);
    this.signature = signature;
    return {
      port: this.index,
      devicePresent: (ssts & 0xf) === SSTS_DET_ESTABLISHED && signature === SATA_SIGNATURE_DISK,
      signature,
    };
  }

  /** Starts the port and identifies its disk. */
  async bringUp(): Promise<AtaIdentify> {
    this.#gone = false;
    this.#resetSlots();
    await this.start();
    try {
      this.identity = await this.identify();
    } catch (err) {
      this.#gone = true;
      await this.stop().catch(() => {});
      throw err;
    }
    return this.identity;
  }

  // ---- seed 2.1 ahci_identify ----

  async identify(): Promise<AtaIdentify> {
    const result = await this.#withRetries(
      () => this.#dataIn({ command: ATA_IDENTIFY_DEVICE, lba: 0, count: 0, features: 0 }, 512),
      {},
      null,
    );
    return parseIdentify(result.data!);
  }

  // ---- seed 2.1 ahci_read / ahci_write ----

  /** Reads `count` sectors from `lba` (split into commands the drive and PRDTs take). */
  async read(lba: number, count: number, events?: IoEvents): Promise<Uint8Array> {
    const id = this.#present();
    this.#checkRange(id, lba, count);
    const bytes = count * id.logicalSectorBytes;
    const runs = await this.#driver.pool.allocRuns(bytes);
    try {
      const pieces = this.#plan(runs, bytes, id.logicalSectorBytes, lba);
      const results = await Promise.all(pieces.map((p) =>
        this.#withRetries(
          () => this.#transfer(false, p.lba, p.sectors, p.prds, false),
          { lba: String(p.lba), count: String(p.sectors) },
          events ?? null,
        )
      ));
      return results.length === 1 ? results[0].data! : concat(results.map((r) => r.data!));
    } finally {
      this.#driver.pool.freeAll(runs);
    }
  }

  /** Writes whole sectors at `lba`; with `fua` they are on the medium when this resolves. */
  async write(lba: number, data: Uint8Array, fua: boolean, events?: IoEvents): Promise<number> {
    const id = this.#present();
    if (data.length === 0 || data.length % id.logicalSectorBytes !== 0) {
      throw invalidArgument("data", `a write is a whole number of ${id.logicalSectorBytes}-byte sectors`);
    }
    const count = data.length / id.logicalSectorBytes;
    this.#checkRange(id, lba, count);
    const runs = await this.#driver.pool.allocRuns(data.length);
    try {
      await writeSegments(this.#hw, spread(runs, data));
      const pieces = this.#plan(runs, data.length, id.logicalSectorBytes, lba);
      await Promise.all(pieces.map((p) =>
        this.#withRetries(
          () => this.#transfer(true, p.lba, p.sectors, p.prds, fua),
          { lba: String(p.lba), count: String(p.sectors) },
          events ?? null,
        )
      ));
      return count;
    } finally {
      this.#driver.pool.freeAll(runs);
    }
  }

  /** FLUSH CACHE EXT: every completed write is on the medium. */
  async flush(events?: IoEvents): Promise<void> {
    this.#present();
    await this.#withRetries(
      () => this.#nonData({ command: ATA_FLUSH_CACHE_EXT, lba: 0, count: 0, features: 0 }),
      {},
      events ?? null,
    );
  }

  // ---- seed 2.1 ahci_issue_command / ahci_wait_command ----

  /** Issues a raw command in a free slot and answers with the slot. */
  async issueCommand(raw: RawAtaCommand): Promise<number> {
    this.#present();
    const bytes = raw.direction === "out"
      ? raw.payload.length
      : raw.direction === "in"
      ? raw.receiveBytes
      : 0;
    if (bytes % 2 !== 0) throw invalidArgument("receive_bytes", "a data transfer is an even number of bytes");
    const runs = bytes > 0 ? await this.#driver.pool.allocRuns(bytes) : [];
    try {
      if (raw.direction === "out" && bytes > 0) await writeSegments(this.#hw, spread(runs, raw.payload));
    } catch (err) {
      this.#driver.pool.freeAll(runs);
      throw err;
    }
    const prds = this.#prds(runs, bytes);
    let issued!: (slot: number) => void;
    const slotKnown = new Promise<number>((resolve) => issued = resolve);
    const done = this.#submit({
      fis: {
        command: raw.command,
        features: raw.features,
        lba: raw.lba,
        count: raw.count,
        device: raw.device,
        control: raw.control,
        isCommand: true,
      },
      queued: raw.queued,
      write: raw.direction === "out",
      prds,
      readBack: raw.direction === "in" && bytes > 0 ? prds : null,
      raw: true,
      onIssue: issued,
    }).finally(() => this.#driver.pool.freeAll(runs));
    // Reported by waitCommand; until then the rejection is only parked.
    done.catch(() => {});
    const slot = await Promise.race([slotKnown, done.then(() => slotKnown)]);
    this.#raw.set(slot, done);
    return slot;
  }

  /** Waits for a raw command's completion, up to `timeoutMs`; it keeps running if this times out. */
  async waitCommand(slot: number, timeoutMs: number): Promise<AtaResult> {
    const done = this.#raw.get(slot);
    if (!done) throw notFound("slot", `no raw command was issued in slot ${slot} of port ${this.index}`);
    const limit = timeoutMs > 0 ? timeoutMs : this.#driver.options.commandTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      done.then((value) => ({ value }), (error: unknown) => ({ error })),
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), limit)),
    ]);
    clearTimeout(timer);
    if (outcome === null) throw timeoutError(`the command in slot ${slot}`, { port: String(this.index) });
    this.#raw.delete(slot);
    if ("error" in outcome) throw outcome.error;
    return outcome.value;
  }

  // ---- seed 2.1 ahci_handle_interrupt ----

  /**
   * Clears the port's interrupt status and acts on it: completions are settled at once; link
   * changes and errors are handled in the background (they issue commands of their own, whose
   * completions need this interrupt line free).
   */
  async handleInterrupt(): Promise<void> {
    this.#counts.interrupts++;
    const is = await this.#get(PX_IS);
    if (is !== 0) await this.#set(PX_IS, is);
    // Failures of these are logged and acted on by #maintain.
    if (is & (PXIS_PCS | PXIS_PRCS)) {
      // PCS and PRCS mirror PxSERR.DIAG.X/N: cleared there, they do not raise the HBA's IS again.
      await this.#set(PX_SERR, await this.#get(PX_SERR));
      this.#maintain("link change", () => this.#linkChanged()).catch(() => {});
    } else if (is & PXIS_ERRORS) {
      this.#maintain("error recovery", () => this.#recoverFrom(is)).catch(() => {});
    } else {
      await this.#checkCompletions();
    }
  }

  // ---- seed 2.1 ahci_reset_port ----

  /**
   * COMRESET through PxSCTL.DET, then the port is brought back: errors cleared, FIS receive and
   * the command engine restarted, commands in flight reissued. Resolves with whether a disk answered.
   */
  reset(): Promise<{ devicePresent: boolean; reissued: number }> {
    return this.#maintain("port reset", () => this.#comreset("requested"));
  }

  // ---- seed 2.1 ahci_get_port_status ----

  async status(): Promise<PortStatus> {
    const [cmd, tfd, ssts, serr, is, sact, ci] = await Promise.all(
      [PX_CMD, PX_TFD, PX_SSTS, PX_SERR, PX_IS, PX_SACT, PX_CI].map((r) => this.#get(r)),
    );
    const power: Record<number, LinkPowerState> = { 1: "active", 2: "partial", 6: "slumber", 8: "devsleep" };
    return {
      port: this.index,
      devicePresent: this.identity !== null,
      powerState: power[(ssts >>> 8) & 0xf] ?? null,
      commandAndStatus: cmd,
      taskFileData: tfd,
      sataStatus: ssts,
      sataError: serr,
      interruptStatus: is,
      sataActive: sact,
      commandIssue: ci,
      ...this.#counts,
    };
  }

  /** Moves the link to a power state through PxCMD.ICC; resolves with the state it was in. */
  async setPowerState(state: LinkPowerState): Promise<LinkPowerState | null> {
    this.#present();
    const cap = this.#driver.capabilities;
    const supported = state === "active" || (state === "partial" && (cap & CAP_PSC) !== 0) ||
      (state === "slumber" && (cap & CAP_SSC) !== 0);
    if (!supported) {
      throw new AstraError(Code.FAILED_PRECONDITION, Errno.ENOTSUP, `the HBA does not support ${state}`, {
        argument: "state",
      });
    }
    const before = (await this.status()).powerState;
    const icc = { active: 1, partial: 2, slumber: 6 }[state as "active" | "partial" | "slumber"];
    const cmd = await this.#get(PX_CMD);
    await this.#set(PX_CMD, ((cmd & ~(0xf << PXCMD_ICC_SHIFT)) | (icc << PXCMD_ICC_SHIFT)) >>> 0);
    return before;
  }

  /** Overdue commands: look for lost completions first, then reset the port; they fail as timed out. */
  async checkTimeouts(now: number): Promise<void> {
    if (this.#holding || this.#halted) return;
    this.#pending = this.#pending.filter((c) => {
      if (c.deadline > now) return true;
      c.reject(
        timeoutError(`AHCI port ${this.index}: a command waiting for a slot`, { port: String(this.index) }),
      );
      return false;
    });
    let stale = false;
    for (const c of this.#inflight.values()) {
      if (c.issued && now - c.submittedAt >= POLL_AFTER_MS) stale = true;
    }
    if (!stale) return;
    await this.#checkCompletions();
    const overdue = [...this.#inflight.values()].filter((c) => c.deadline <= performance.now());
    if (overdue.length === 0) return;
    for (const c of overdue) c.timedOut = true;
    await this.#maintain("timeout", () => this.#comreset(`${overdue.length} command(s) timed out`));
  }

  /** Shuts the port down: the drive's write cache is flushed first, as an OS does at shutdown. */
  async close(): Promise<void> {
    if (this.identity && !this.#gone && !this.#halted) {
      await this.flush().catch((err) =>
        log.warn("flush at shutdown failed", { port: this.index, error: String(err) })
      );
    }
    this.#gone = true;
    this.identity = null;
    this.#failAll(
      new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, `AHCI port ${this.index} is shut down`),
    );
    await this.#maintenance;
    await this.stop().catch(() => {});
  }

  // ---- internals: requests ----

  #present(): AtaIdentify {
    if (!this.identity) throw notFound("port", `AHCI port ${this.index} has no disk`, Errno.ENODEV);
    return this.identity;
  }

  #checkRange(id: AtaIdentify, lba: number, count: number): void {
    if (!Number.isSafeInteger(lba) || lba < 0) throw invalidArgument("lba", `bad LBA ${lba}`);
    if (!Number.isInteger(count) || count < 1) {
      throw invalidArgument("count", `at least one sector, not ${count}`);
    }
    if (lba + count > id.sectors) {
      throw outOfRange(
        "lba",
        `sectors ${lba}..${lba + count - 1} lie beyond the disk's ${id.sectors}`,
        Errno.ENXIO,
      );
    }
  }

  #useNcq(): boolean {
    const mode = this.#driver.options.transferMode;
    const able = (this.#driver.capabilities & CAP_SNCQ) !== 0 && (this.identity?.ncqDepth ?? 0) > 0;
    return able && (mode === "auto" || mode === "ncq");
  }

  #mode(): "ncq" | "dma-ext" | "dma" {
    if (this.#useNcq()) return "ncq";
    const mode = this.#driver.options.transferMode;
    if (mode === "dma" || !this.identity?.lba48) return "dma";
    return "dma-ext";
  }

  /** PRDs over the first `bytes` of `runs`, each at most the configured PRD size. */
  #prds(runs: readonly DmaRegion[], bytes: number): PhysicalSegment[] {
    const most = Math.min(PRD_MAX_BYTES, this.#driver.options.prdBytes);
    const out: PhysicalSegment[] = [];
    let left = bytes;
    for (const r of runs) {
      for (let at = 0; at < r.bytes && left > 0; at += most) {
        const n = Math.min(most, r.bytes - at, left);
        out.push({ address: r.address + at, length: n });
        left -= n;
      }
    }
    return out;
  }

  /**
   * Splits a transfer into commands: each at most the sectors its command takes and at most
   * MAX_PRDS descriptors, cut at sector boundaries.
   */
  #plan(
    runs: readonly DmaRegion[],
    bytes: number,
    sectorBytes: number,
    lba: number,
  ): { lba: number; sectors: number; prds: PhysicalSegment[] }[] {
    const maxBytes = (this.#mode() === "dma" ? 256 : 65536) * sectorBytes;
    const pieces: { lba: number; sectors: number; prds: PhysicalSegment[] }[] = [];
    let current: PhysicalSegment[] = [];
    let currentBytes = 0;
    let next = lba;
    const close = () => {
      const sectors = currentBytes / sectorBytes;
      pieces.push({ lba: next, sectors, prds: current });
      next += sectors;
      current = [];
      currentBytes = 0;
    };
    for (const prd of this.#prds(runs, bytes)) {
      let rest = prd;
      while (rest.length > 0) {
        const take = Math.min(rest.length, maxBytes - currentBytes);
        current.push({ address: rest.address, length: take });
        currentBytes += take;
        rest = { address: rest.address + take, length: rest.length - take };
        const full = currentBytes === maxBytes;
        const tooMany = current.length >= MAX_PRDS && currentBytes % sectorBytes === 0;
        if (full || tooMany) close();
      }
    }
    if (currentBytes > 0) close();
    return pieces;
  }

  #transfer(
    write: boolean,
    lba: number,
    sectors: number,
    prds: PhysicalSegment[],
    fua: boolean,
  ): Promise<AtaResult> {
    const mode = this.#mode();
    let fis: FisFields;
    if (mode === "ncq") {
      fis = {
        command: write ? ATA_WRITE_FPDMA_QUEUED : ATA_READ_FPDMA_QUEUED,
        features: sectors === 65536 ? 0 : sectors,
        lba,
        count: 0,
        device: 0x40 | (fua ? 0x80 : 0),
        control: 0,
        isCommand: true,
      };
    } else if (mode === "dma-ext") {
      fis = {
        command: write
          ? (fua && this.identity?.fua ? ATA_WRITE_DMA_FUA_EXT : ATA_WRITE_DMA_EXT)
          : ATA_READ_DMA_EXT,
        features: 0,
        lba,
        count: sectors === 65536 ? 0 : sectors,
        device: 0x40,
        control: 0,
        isCommand: true,
      };
    } else {
      if (lba + sectors > 0x1000_0000) {
        return Promise.reject(
          outOfRange("lba", `28-bit DMA reaches LBA ${0x0fff_ffff} at most, not ${lba + sectors - 1}`),
        );
      }
      fis = {
        command: write ? ATA_WRITE_DMA : ATA_READ_DMA,
        features: 0,
        lba: lba % 0x100_0000,
        count: sectors === 256 ? 0 : sectors,
        device: 0x40 | Math.floor(lba / 0x100_0000),
        control: 0,
        isCommand: true,
      };
    }
    const done = this.#submit({
      fis,
      queued: mode === "ncq",
      write,
      prds,
      readBack: write ? null : prds,
      raw: false,
      onIssue: null,
    });
    const flushAfter = write && fua && mode !== "ncq" && fis.command !== ATA_WRITE_DMA_FUA_EXT;
    if (!flushAfter) return done;
    // Without a FUA write command, the write is made durable by a flush right after it.
    return done.then((r) =>
      r.status & ATA_STATUS_ERR
        ? r
        : this.#nonData({ command: ATA_FLUSH_CACHE_EXT, lba: 0, count: 0, features: 0 })
    );
  }

  #nonData(f: { command: number; lba: number; count: number; features: number }): Promise<AtaResult> {
    return this.#submit({
      fis: { ...f, device: 0x40, control: 0, isCommand: true },
      queued: false,
      write: false,
      prds: [],
      readBack: null,
      raw: false,
      onIssue: null,
    });
  }

  async #dataIn(
    f: { command: number; lba: number; count: number; features: number },
    bytes: number,
  ): Promise<AtaResult> {
    const buffer = await this.#driver.pool.alloc(bytes);
    try {
      const prds = [{ address: buffer.address, length: bytes }];
      return await this.#submit({
        fis: { ...f, device: 0x40, control: 0, isCommand: true },
        queued: false,
        write: false,
        prds,
        readBack: prds,
        raw: false,
        onIssue: null,
      });
    } finally {
      this.#driver.pool.free(buffer);
    }
  }

  /**
   * Runs a command until it succeeds: device errors and timeouts are retried up to maxRetries
   * times; a device error that persists gets a port reset and one last try.
   */
  async #withRetries(
    run: () => Promise<AtaResult>,
    facts: Record<string, string>,
    events: IoEvents | null,
  ): Promise<AtaResult> {
    const all = { ...facts, port: String(this.index), controller: this.#driver.name };
    let resetDone = false;
    for (let attempt = 0;; attempt++) {
      let failure: AstraError;
      try {
        const result = await run();
        if (!(result.status & ATA_STATUS_ERR)) return result;
        failure = ataError(result, all);
      } catch (err) {
        if (!(err instanceof AstraError) || err.errno !== Errno.ETIMEDOUT) throw err;
        failure = err;
        failure.detail.facts = { ...all, ...failure.detail.facts };
        events?.timeout();
      }
      const retry = attempt < this.#driver.options.maxRetries;
      const lastTry = !retry && !resetDone && failure.errno !== Errno.ETIMEDOUT && this.identity !== null;
      if (!retry && !lastTry) {
        this.#counts.errors++;
        failure.detail.facts.attempts = String(attempt + 1);
        throw failure;
      }
      this.#counts.retries++;
      events?.retry();
      if (lastTry) {
        // The error persisted through the retries: reset the port before the last try.
        resetDone = true;
        if (!(await this.reset()).devicePresent) {
          throw goneError(this.index, "the disk went away during error recovery");
        }
      }
    }
  }

  // ---- internals: slots, issue and completion ----

  #submit(
    c: Pick<Command, "fis" | "queued" | "write" | "prds" | "readBack" | "raw" | "onIssue">,
  ): Promise<AtaResult> {
    if (this.#gone) return Promise.reject(goneError(this.index, "no disk is attached"));
    if (c.prds.length > 0xffff) {
      return Promise.reject(invalidArgument("data", "a PRDT holds at most 65535 descriptors"));
    }
    return new Promise<AtaResult>((resolve, reject) => {
      const timeoutMs = this.#driver.options.commandTimeoutMs;
      this.#counts.commands++;
      this.#pending.push({
        ...c,
        slot: -1,
        issued: false,
        timeoutMs,
        deadline: performance.now() + timeoutMs,
        submittedAt: 0,
        reissues: 0,
        timedOut: false,
        table: null,
        resolve,
        reject,
      });
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    if (!this.#running || this.#holding || this.#halted || this.#pending.length === 0) return;
    this.#pumpAgain = false;
    let failed = false;
    this.#pumping = this.#issueBatches().catch((err) => {
      // What was written times out and is recovered by a port reset; the watchdog pumps again.
      failed = true;
      log.warn("AHCI command issue failed", { port: this.index, error: String(err) });
    }).finally(() => {
      this.#pumping = null;
      // Issuing stopped at what cannot go yet (a non-queued command waiting for an idle port);
      // only a completion or a new command that came meanwhile can change that. Pumping again
      // without one would spin in microtasks and starve the very completion it waits for.
      if (!failed && this.#pumpAgain) this.#pump();
    });
  }

  /** What may be issued now: queued commands together, a non-queued one only on an idle port. */
  #takeBatch(): Command[] {
    const batch: Command[] = [];
    while (this.#pending.length > 0 && batch.length < this.#freeSlots.length) {
      const next = this.#pending[0];
      if (next.queued ? this.#inflight.size > this.#queuedInflight : this.#inflight.size + batch.length > 0) {
        break;
      }
      batch.push(this.#pending.shift()!);
      if (!next.queued) break;
    }
    return batch;
  }

  #resetSlots(): void {
    this.#inflight.clear();
    this.#queuedInflight = 0;
    this.#freeSlots = Array.from({ length: this.#slots }, (_, i) => this.#slots - 1 - i);
  }

  /** Builds a command's header and table in its slot (in the shadows, or its own table). */
  async #build(c: Command, slot: number, ownTables: { address: number; data: Uint8Array }[]): Promise<void> {
    const area = this.#area!;
    const fis = h2dFis(c.fis);
    const prdt = prdtBytes(c.prds);
    let tableAddress = area.address + AREA_TABLES + slot * INLINE_TABLE_BYTES;
    if (c.prds.length > INLINE_PRDS) {
      c.table = await this.#driver.pool.alloc(TABLE_HEADER_BYTES + prdt.length, 128);
      const table = new Uint8Array(TABLE_HEADER_BYTES + prdt.length);
      table.set(fis);
      table.set(prdt, TABLE_HEADER_BYTES);
      ownTables.push({ address: c.table.address, data: table });
      tableAddress = c.table.address;
    } else {
      const at = slot * INLINE_TABLE_BYTES;
      this.#tables.fill(0, at, at + INLINE_TABLE_BYTES);
      this.#tables.set(fis, at);
      this.#tables.set(prdt, at + TABLE_HEADER_BYTES);
    }
    const header = new DataView(this.#headers.buffer, slot * HEADER_BYTES, HEADER_BYTES);
    // CFL = 5 dwords, W for host-to-device data, PRDTL.
    header.setUint32(0, (5 | (c.write ? 1 << 6 : 0) | (c.prds.length << 16)) >>> 0, true);
    header.setUint32(4, 0, true);
    header.setUint32(8, tableAddress % 0x1_0000_0000, true);
    header.setUint32(12, Math.floor(tableAddress / 0x1_0000_0000), true);
  }

  /**
   * The shadows of slots low..high as one write: the headers from slot `low` on and the tables up
   * to slot `high` lie side by side in the port's area (slots outside the range get their own
   * bytes back).
   */
  #shadowWrite(low: number, high: number): { address: number; data: Uint8Array } {
    const headers = this.#headers.subarray(low * HEADER_BYTES);
    const tables = this.#tables.subarray(0, (high + 1) * INLINE_TABLE_BYTES);
    const data = new Uint8Array(headers.length + tables.length);
    data.set(headers);
    data.set(tables, headers.length);
    return { address: this.#area!.address + AREA_CLB + low * HEADER_BYTES, data };
  }

  /** Issues everything that may go now: one span of headers, one of tables, PxSACT and PxCI once. */
  async #issueBatches(): Promise<void> {
    for (;;) {
      if (!this.#running || this.#holding || this.#halted) return;
      const batch = this.#takeBatch();
      if (batch.length === 0) return;
      const now = performance.now();
      let low = SLOTS, high = -1, sact = 0, ci = 0;
      const ownTables: { address: number; data: Uint8Array }[] = [];
      for (const c of batch) {
        const slot = this.#freeSlots.pop()!;
        c.slot = slot;
        c.submittedAt = now;
        c.deadline = now + c.timeoutMs;
        if (c.queued) {
          // The tag is the slot, in bits 7:3 of the count field.
          c.fis = { ...c.fis, count: (c.fis.count & 0x7) | (slot << 3) };
          this.#queuedInflight++;
          sact |= 1 << slot;
        }
        ci |= 1 << slot;
        this.#inflight.set(slot, c);
        if (this.#inflight.size > this.#counts.maxInflight) this.#counts.maxInflight = this.#inflight.size;
        low = Math.min(low, slot);
        high = Math.max(high, slot);
        await this.#build(c, slot, ownTables);
        c.onIssue?.(slot);
      }
      // The command structures, then PxSACT and PxCI: stores the HBA sees in order, one batch.
      const accesses = writeAccesses([...ownTables, this.#shadowWrite(low, high)]);
      if (sact) accesses.push({ op: "write32", address: this.#base + PX_SACT, value: sact >>> 0 });
      accesses.push({ op: "write32", address: this.#base + PX_CI, value: ci >>> 0 });
      await this.#hw.access(accesses);
      for (const c of batch) c.issued = true;
    }
  }

  /** Settles the commands the HBA has finished (their PxCI / PxSACT bits are clear). */
  #checkCompletions(): Promise<void> {
    if (this.#checking) {
      this.#checkAgain = true;
      return this.#checking;
    }
    const run = async () => {
      do {
        this.#checkAgain = false;
        await this.#completeFinished();
      } while (this.#checkAgain);
    };
    this.#checking = run().finally(() => {
      this.#checking = null;
    });
    return this.#checking;
  }

  async #completeFinished(): Promise<void> {
    if (this.#inflight.size === 0 || this.#holding) return;
    const sact = this.#queuedInflight > 0 ? await this.#get(PX_SACT) : 0;
    const ci = this.#inflight.size > this.#queuedInflight ? await this.#get(PX_CI) : 0;
    const finished = this.#finishedAmong(sact, ci);
    if (finished.length === 0) return;
    for (const c of finished) this.#release(c);
    await this.#settle(finished, OK_REGISTERS);
    this.#pump();
  }

  #finishedAmong(sact: number, ci: number): Command[] {
    const finished: Command[] = [];
    for (const [slot, c] of this.#inflight) {
      const bit = (1 << slot) >>> 0;
      if (c.issued && (c.queued ? (sact & bit) === 0 : (ci & bit) === 0)) finished.push(c);
    }
    return finished;
  }

  #release(c: Command): void {
    this.#inflight.delete(c.slot);
    if (c.queued) this.#queuedInflight--;
    this.#freeSlots.push(c.slot);
    if (c.table) {
      this.#driver.pool.free(c.table);
      c.table = null;
    }
  }

  /** Reads back data (and for raw commands the device's registers), then resolves the commands. */
  async #settle(done: Command[], registers: DeviceRegisters): Promise<void> {
    const failed = (registers.status & ATA_STATUS_ERR) !== 0;
    const wanted = done.filter((c) => c.readBack && !failed);
    const data = new Map<Command, Uint8Array>();
    try {
      if (wanted.length > 0) {
        const parts = await readSegments(this.#hw, wanted.flatMap((c) => c.readBack!));
        let at = 0;
        for (const c of wanted) {
          data.set(c, concat(parts.slice(at, at + c.readBack!.length)));
          at += c.readBack!.length;
        }
      }
    } catch (err) {
      for (const c of done) c.reject(err);
      return;
    }
    const rawRegisters = !failed && done.some((c) => c.raw) ? await this.#readRegisterFises() : registers;
    const now = performance.now();
    for (const c of done) {
      const regs = c.raw ? rawRegisters : registers;
      c.resolve({
        status: regs.status,
        error: regs.error,
        lba: regs.lba,
        data: data.get(c) ?? null,
        transferredBytes: failed ? 0 : c.prds.reduce((n, p) => n + p.length, 0),
        latencyMicros: Math.round((now - c.submittedAt) * 1000),
      });
    }
  }

  /** The registers of the last D2H (or, after PIO data-in, PIO Setup) FIS the drive sent. */
  async #readRegisterFises(): Promise<DeviceRegisters> {
    const fis = await this.#hw.readPhysical(this.#area!.address + AREA_FB, FIS_AREA_BYTES);
    const d2h = fis.subarray(RFIS_D2H, RFIS_D2H + 20);
    const lba = d2h[4] + d2h[5] * 0x100 + d2h[6] * 0x1_0000 + d2h[8] * 0x100_0000 + d2h[9] * 0x1_0000_0000 +
      d2h[10] * 0x100_0000_0000;
    const tfd = await this.#get(PX_TFD);
    return { status: tfd & 0xff, error: (tfd >>> 8) & 0xff, lba };
  }

  // ---- internals: errors, resets and hot plug ----

  /**
   * Runs `task` after every earlier recovery, reset or link change of the port. If it fails, the
   * port's hardware is not doing what it must: the disk is given up on (its requests fail).
   */
  #maintain<T>(what: string, task: () => Promise<T>): Promise<T> {
    const run = this.#maintenance.then(task);
    this.#maintenance = run.then(() => {}, (err) => {
      if (this.#gone) return;
      log.error(`AHCI port ${what} failed`, { port: this.index, error: String(err) });
      this.#deviceGone(`${what} failed: ${String(err)}`);
    });
    return run;
  }

  /**
   * A task-file or host error stopped the port: settle what finished before it, restart the
   * port (COMRESET if the link or the drive is stuck), settle the failed command with the
   * drive's error and reissue the others.
   */
  async #recoverFrom(is: number): Promise<void> {
    if (this.#gone) return;
    this.#holding = true;
    try {
      await this.#pumping;
      await this.#checking;
      const tfd = await this.#get(PX_TFD);
      const cmd = await this.#get(PX_CMD);
      const sact = await this.#get(PX_SACT);
      const ci = await this.#get(PX_CI);
      const registers = await this.#readRegisterFises();
      const finished = this.#finishedAmong(sact, ci).filter((c) =>
        c.queued || !(is & PXIS_TFES) ||
        c.slot !== ((cmd >>> PXCMD_CCS_SHIFT) & 0x1f)
      );
      for (const c of finished) this.#release(c);
      if (finished.length > 0) await this.#settle(finished, OK_REGISTERS);

      await this.stop();
      await this.#set(PX_SERR, 0xffff_ffff);
      await this.#set(PX_IS, 0xffff_ffff);
      const ssts = await this.#get(PX_SSTS);
      if ((ssts & 0xf) !== SSTS_DET_ESTABLISHED || (tfd & (ATA_STATUS_BSY | ATA_STATUS_DRQ))) {
        // The link or the drive is stuck: only a COMRESET brings it back.
        await this.#comreset(`error recovery (PxIS 0x${(is >>> 0).toString(16)})`);
        return;
      }
      await this.start();
      let failed: Command | undefined;
      let failure: DeviceRegisters = { status: tfd & 0xff, error: (tfd >>> 8) & 0xff, lba: registers.lba };
      if (is & PXIS_TFES) {
        if ([...this.#inflight.values()].some((c) => c.queued)) {
          // NCQ: the drive names the failed tag in its error log (and leaves its error state).
          const entry = await this.#readNcqErrorLog();
          if (!entry) {
            await this.#comreset("the NCQ error log could not be read");
            return;
          }
          failed = this.#inflight.get(entry.tag);
          failure = { status: entry.status | ATA_STATUS_ERR, error: entry.error, lba: entry.lba };
        } else {
          failed = this.#inflight.get((cmd >>> PXCMD_CCS_SHIFT) & 0x1f);
        }
      } else if (is & (PXIS_HBFS | PXIS_HBDS | PXIS_OFS)) {
        const culprit = this.#inflight.get((cmd >>> PXCMD_CCS_SHIFT) & 0x1f);
        if (culprit && !culprit.queued) {
          this.#release(culprit);
          this.#counts.errors++;
          culprit.reject(
            new AstraError(
              Code.DATA_LOSS,
              Errno.EIO,
              `AHCI port ${this.index}: host bus error on the command`,
              {
                facts: { port: String(this.index), interruptStatus: `0x${(is >>> 0).toString(16)}` },
              },
            ),
          );
        }
      }
      if (failed) {
        this.#release(failed);
        await this.#settle(
          [failed],
          failure.status & ATA_STATUS_ERR ? failure : { ...failure, status: 0x51 },
        );
      }
      this.#reissueInflight();
    } finally {
      this.#holding = false;
      this.#pump();
    }
  }

  /**
   * READ LOG EXT 10h, issued directly in a free slot and polled for: during recovery the port
   * runs nothing else.
   */
  async #readNcqErrorLog(): Promise<{ tag: number; status: number; error: number; lba: number } | null> {
    const buffer = await this.#driver.pool.alloc(512);
    try {
      let slot = 0;
      while (slot < this.#slots - 1 && this.#inflight.has(slot)) slot++;
      const c = {
        fis: {
          command: ATA_READ_LOG_EXT,
          features: 0,
          lba: ATA_LOG_NCQ_ERROR,
          count: 1,
          device: 0x40,
          control: 0,
          isCommand: true,
        },
        write: false,
        prds: [{ address: buffer.address, length: 512 }],
      } as Command;
      await this.#build(c, slot, []);
      await writeSegments(this.#hw, [this.#shadowWrite(slot, slot)]);
      const bit = (1 << slot) >>> 0;
      await this.#set(PX_CI, bit);
      const end = performance.now() + REGISTER_TIMEOUT_MS;
      for (;;) {
        if (((await this.#get(PX_CI)) & bit) === 0) {
          if ((await this.#get(PX_TFD)) & ATA_STATUS_ERR) return null;
          break;
        }
        if (((await this.#get(PX_IS)) & PXIS_ERRORS) || performance.now() > end) {
          // The log command failed or hangs: stop the port so that it cannot DMA into the
          // buffer once it is freed.
          await this.stop();
          return null;
        }
        await new Promise((r) => setTimeout(r, 0));
      }
      const p = await this.#hw.readPhysical(buffer.address, 512);
      if (p[0] & 0x80) return null;
      return {
        tag: p[0] & 0x1f,
        status: p[2],
        error: p[3],
        lba: p[4] + p[5] * 0x100 + p[6] * 0x1_0000 + p[8] * 0x100_0000 + p[9] * 0x1_0000_0000 +
          p[10] * 0x100_0000_0000,
      };
    } finally {
      this.#driver.pool.free(buffer);
    }
  }

  /**
   * Puts every command the HBA dropped back at the head of the queue. A command that timed out
   * fails instead (its request retries it); one dropped too often fails as well.
   */
  #reissueInflight(): number {
    const dropped = [...this.#inflight.values()].sort((a, b) => a.submittedAt - b.submittedAt);
    for (const c of dropped) {
      if (c.table) this.#driver.pool.free(c.table);
      c.table = null;
    }
    this.#resetSlots();
    const again: Command[] = [];
    for (const c of dropped) {
      c.reissues++;
      c.issued = false;
      if (c.timedOut) {
        c.reject(timeoutError(`AHCI port ${this.index}: the command`, { port: String(this.index) }));
      } else if (c.reissues > this.#driver.options.maxRetries + 1) {
        c.reject(hardwareError(`AHCI port ${this.index}: the command was interrupted ${c.reissues} times`));
      } else {
        if (c.queued) c.fis = { ...c.fis, count: c.fis.count & 0x7 };
        again.push(c);
      }
    }
    this.#pending = [...again, ...this.#pending];
    return again.length;
  }

  #failAll(err: AstraError): void {
    for (const c of [...this.#inflight.values()]) {
      this.#release(c);
      c.reject(err);
    }
    for (const c of this.#pending.splice(0)) c.reject(err);
  }

  /**
   * COMRESET: DET = 1 for at least 1 ms, then 0, and wait for the link. With a disk back, the
   * port is restarted and what was in flight is reissued; without one, it is gone.
   */
  async #comreset(reason: string): Promise<{ devicePresent: boolean; reissued: number }> {
    this.#counts.resets++;
    this.#holding = true;
    try {
      log.info("AHCI port reset", { port: this.index, reason });
      await this.stop();
      const sctl = await this.#get(PX_SCTL);
      await this.#set(PX_SCTL, (sctl & ~0xf) | 1);
      await new Promise((r) => setTimeout(r, 1));
      await this.#set(PX_SCTL, sctl & ~0xf);
      const end = performance.now() + LINK_TIMEOUT_MS;
      let ssts = await this.#get(PX_SSTS);
      // Nothing at all on the wire (DET 0) after the reset: no disk will come.
      while ((ssts & 0xf) !== SSTS_DET_ESTABLISHED && (ssts & 0xf) !== 0 && performance.now() < end) {
        await new Promise((r) => setTimeout(r, 1));
        ssts = await this.#get(PX_SSTS);
      }
      await this.#set(PX_SERR, 0xffff_ffff);
      await this.#set(PX_IS, 0xffff_ffff);
      if ((ssts & 0xf) !== SSTS_DET_ESTABLISHED) {
        this.#deviceGone("no disk answered the port reset");
        return { devicePresent: false, reissued: 0 };
      }
      await this.start();
      return { devicePresent: true, reissued: this.#reissueInflight() };
    } finally {
      this.#holding = false;
      this.#pump();
    }
  }

  /** PxIS.PCS/PRCS: a disk arrived, left, or the link dropped. */
  async #linkChanged(): Promise<void> {
    const det = (await this.#get(PX_SSTS)) & 0xf;
    if (det === SSTS_DET_ESTABLISHED) {
      // A new disk is brought up; an attached one's link is back (after a COMRESET) and carries on.
      if (!this.identity) await this.#driver.deviceArrived(this);
      else await this.#checkCompletions();
      return;
    }
    if (!this.identity) return;
    if (det === SSTS_DET_PRESENT) {
      // The drive is there but the PHY lost communication: a COMRESET recovers the link.
      await this.#comreset("PHY error");
      return;
    }
    this.#deviceGone("the disk was removed");
    await this.stop();
  }

  /** The disk is gone: what it had in flight and waiting fails with ENODEV. */
  #deviceGone(reason: string): void {
    const hadDisk = this.identity !== null;
    this.identity = null;
    this.#gone = true;
    this.#running = false;
    this.#failAll(goneError(this.index, reason));
    this.#raw.clear();
    if (hadDisk) this.#driver.deviceLeft(this, reason);
  }

  // ---- internals: registers ----

  #get(register: number): Promise<number> {
    return this.#hw.read32(this.#base + register);
  }

  #set(register: number, value: number): Promise<void> {
    return this.#hw.write32(this.#base + register, value >>> 0);
  }

  async #waitRegister(register: number, test: (v: number) => boolean, what: string): Promise<void> {
    const end = performance.now() + REGISTER_TIMEOUT_MS;
    for (let spin = 0;; spin++) {
      const v = await this.#get(register);
      if (test(v)) return;
      if (performance.now() > end) {
        throw hardwareError(`AHCI port ${this.index}: timed out waiting for ${what} (0x${v.toString(16)})`);
      }
      await new Promise((r) => setTimeout(r, spin < 10 ? 0 : 1));
    }
  }
}

export class AhciDriver {
  readonly name: string;
  readonly options: Required<AhciDriverOptions>;
  readonly pool: DmaPool;
  /** Called when a disk is identified on a port (at init and on hot plug) or leaves it. */
  onDeviceChange: ((port: AhciPort, change: "added" | "removed", reason: string) => void) | null = null;
  capabilities = 0;
  version = 0;
  portsImplemented = 0;
  readonly #hw: Hardware;
  readonly #info: ControllerInfo;
  readonly #ports = new Map<number, AhciPort>();
  #line: InterruptRegistration | null = null;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #watching = false;
  #closed = false;
  #interrupts = 0;

  constructor(hw: Hardware, info: ControllerInfo, options: AhciDriverOptions = {}) {
    if (info.kind !== "ahci") throw invalidArgument("controller", `${info.name} is not an AHCI HBA`);
    if (info.irqs.length === 0) throw invalidArgument("controller", `${info.name} has no interrupt line`);
    const prdBytes = options.prdBytes ?? PRD_MAX_BYTES;
    if (!Number.isInteger(prdBytes) || prdBytes < 2 || prdBytes % 2 !== 0 || prdBytes > PRD_MAX_BYTES) {
      throw invalidArgument("prdBytes", `a PRD holds an even number of bytes up to 4 MiB, not ${prdBytes}`);
    }
    this.#hw = hw;
    this.#info = info;
    this.name = info.name;
    this.options = {
      transferMode: options.transferMode ?? "auto",
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
      prdBytes,
    };
    this.pool = new DmaPool(hw, `storage:${info.name}`);
  }

  get commandSlots(): number {
    return ((this.capabilities >>> 8) & 0x1f) + 1;
  }

  get ncq(): boolean {
    return (this.capabilities & CAP_SNCQ) !== 0;
  }

  get interrupts(): number {
    return this.#interrupts;
  }

  ports(): AhciPort[] {
    return [...this.#ports.values()];
  }

  port(index: number): AhciPort {
    const port = this.#ports.get(index);
    if (!port) throw notFound("port", `${this.name} has no implemented port ${index}`, Errno.ENODEV);
    return port;
  }

  // ---- seed 2.1 ahci_init ----

  /**
   * Resets the HBA, enables AHCI mode and interrupts, sets up every implemented port and starts
   * and identifies the disks found on them.
   */
  async init(): Promise<AhciInitSummary> {
    await this.#setReg(HBA_GHC, GHC_AE);
    await this.#setReg(HBA_GHC, GHC_AE | GHC_HR);
    const end = performance.now() + REGISTER_TIMEOUT_MS;
    while ((await this.#reg(HBA_GHC)) & GHC_HR) {
      if (performance.now() > end) throw hardwareError(`${this.name}: the HBA reset did not finish`);
      await new Promise((r) => setTimeout(r, 1));
    }
    await this.#setReg(HBA_GHC, GHC_AE);
    this.capabilities = await this.#reg(HBA_CAP);
    this.portsImplemented = await this.#reg(HBA_PI);
    this.version = await this.#reg(HBA_VS);
    if (!(this.capabilities & CAP_S64A)) {
      log.warn("the HBA has no 64-bit addressing; DMA memory must lie below 4 GiB", { name: this.name });
    }
    if (this.capabilities & CAP_SALP) {
      log.debug("HBA supports aggressive link power management", { name: this.name });
    }
    await this.#hw.releaseDma(this.pool.owner);
    this.#line = await this.#hw.registerInterrupt(
      this.#info.irqs[0],
      `storage:${this.name}`,
      () => this.handleInterrupt(),
    );
    for (let i = 0; i < 32; i++) {
      if (!(this.portsImplemented & (1 << i))) continue;
      const port = new AhciPort(this, this.#hw, i, this.#info.mmioBase);
      await port.init(this.commandSlots);
      this.#ports.set(i, port);
    }
    await this.#setReg(HBA_IS, 0xffff_ffff);
    await this.#setReg(HBA_GHC, GHC_AE | GHC_IE);
    // The watchdog runs from the first command on: identify too must not wait forever.
    const period = Math.max(5, Math.min(WATCHDOG_PERIOD_MS, Math.floor(this.options.commandTimeoutMs / 4)));
    const watchdog = setInterval(() => this.#watch(), period);
    Deno.unrefTimer(watchdog);
    this.#watchdog = watchdog;
    const summaries: PortSummary[] = [];
    for (const port of this.#ports.values()) {
      const summary = await port.detect();
      summaries.push(summary);
      if (summary.devicePresent) await this.deviceArrived(port);
    }
    return {
      capabilities: this.capabilities,
      version: this.version,
      portsImplemented: this.portsImplemented,
      commandSlots: this.commandSlots,
      ncq: this.ncq,
      ports: summaries.map((s) => ({ ...s, devicePresent: this.#ports.get(s.port)!.devicePresent })),
    };
  }

  /** The HBA's interrupt: each port with its IS bit set handles its own, then IS is cleared. */
  async handleInterrupt(): Promise<boolean> {
    this.#interrupts++;
    const is = await this.#reg(HBA_IS);
    if (is === 0) return false;
    await Promise.all(this.ports().filter((p) => is & (1 << p.index)).map((p) => p.handleInterrupt()));
    await this.#setReg(HBA_IS, is);
    return true;
  }

  /** A disk answered on `port` (at init or hot plug): start the port and identify it. */
  async deviceArrived(port: AhciPort): Promise<void> {
    try {
      const id = await port.bringUp();
      log.debug("SATA disk found", {
        controller: this.name,
        port: port.index,
        model: id.model,
        sectors: id.sectors,
      });
      this.onDeviceChange?.(port, "added", "the disk answered");
    } catch (err) {
      log.error("SATA disk did not come up", { controller: this.name, port: port.index, error: String(err) });
    }
  }

  deviceLeft(port: AhciPort, reason: string): void {
    log.info("SATA disk gone", { controller: this.name, port: port.index, reason });
    this.onDeviceChange?.(port, "removed", reason);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.ports().map((port) => port.close()));
    clearInterval(this.#watchdog);
    await this.#setReg(HBA_GHC, GHC_AE).catch(() => {});
    await this.#line?.unregister();
    await this.pool.destroy();
  }

  async #watch(): Promise<void> {
    if (this.#watching) return;
    this.#watching = true;
    try {
      const now = performance.now();
      await Promise.all(this.ports().map((p) => p.checkTimeouts(now)));
    } catch (err) {
      log.warn("AHCI watchdog failed", { name: this.name, error: String(err) });
    } finally {
      this.#watching = false;
    }
  }

  #reg(offset: number): Promise<number> {
    return this.#hw.read32(this.#info.mmioBase + offset);
  }

  #setReg(offset: number, value: number): Promise<void> {
    return this.#hw.write32(this.#info.mmioBase + offset, value >>> 0);
  }
}
