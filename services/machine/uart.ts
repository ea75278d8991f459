// The console as a 16550-compatible UART on the MMIO bus. Registers are 4 bytes apart (reg-shift 2,
// as device trees describe SoC UARTs), so every register is its own 32-bit word and a read with a
// side effect (RBR pops a byte, IIR acknowledges the transmitter interrupt) touches nothing else.
// The transmitter is infinitely fast: a byte written to THR is console output at once, so THR and
// the shift register are always empty. Received bytes come from the console's input FIFO; the UART
// holds the next one in RBR so LSR.DR can say whether there is one.
import { type Console, CONSOLE_INPUT_FIFO_BYTES } from "./console.ts";
import type { InterruptSink } from "./devices/intc.ts";
import type { MmioDevice } from "./devices/mmio.ts";

/** The register window: eight registers, 4 bytes apart, in a page of their own. */
export const UART_MMIO_SIZE = 0x1000;
const REGISTER_SHIFT = 2;

export const UART_RBR = 0; // read: receive buffer; write: THR; DLL while LCR.DLAB
export const UART_IER = 1; // DLM while LCR.DLAB
export const UART_IIR = 2; // read: interrupt identification; write: FCR
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const IER_RX_AVAILABLE = 1 << 0;
export const IER_THR_EMPTY = 1 << 1;
export const IER_LINE_STATUS = 1 << 2;
export const IER_MODEM_STATUS = 1 << 3;

export const IIR_NO_INTERRUPT = 0x01;
export const IIR_THR_EMPTY = 0x02;
export const IIR_RX_AVAILABLE = 0x04;
const IIR_FIFOS_ENABLED = 0xc0;

const FCR_ENABLE = 1 << 0;
const FCR_CLEAR_RX = 1 << 1;

const LCR_DLAB = 1 << 7;
const MCR_LOOPBACK = 1 << 4;

export const LSR_DATA_READY = 1 << 0;
export const LSR_THR_EMPTY = 1 << 5;
export const LSR_TRANSMITTER_EMPTY = 1 << 6;

/** Clear to send, data set ready and carrier detect: a terminal is always there. */
const MSR_LINES_UP = 0xb0;

export class Uart implements MmioDevice {
  #ier = 0;
  #lcr = 0x03; // 8N1
  #mcr = 0;
  #scr = 0;
  #divisor = 1;
  #fifos = false;
  /** The byte in RBR, or null. */
  #holding: number | null = null;
  /** THR emptied since the last IIR read that reported it (the THRE interrupt condition). */
  #thrEmptyPending = false;
  /** The interrupt line as last driven. */
  #asserted = false;
  #interruptsRaised = 0;

  constructor(
    private readonly console: Console,
    private readonly interrupts: InterruptSink,
    readonly irq: number,
  ) {}

  get interruptsRaised(): number {
    return this.#interruptsRaised;
  }

  /** Bytes typed at the console: they queue in its input FIFO. Returns how many fit. */
  receive(data: Uint8Array): number {
    const accepted = this.console.writeInput(data);
    this.#update();
    return accepted;
  }

  readRegister(offset: number): number {
    switch (offset >> REGISTER_SHIFT) {
      case UART_RBR: {
        if (this.#lcr & LCR_DLAB) return this.#divisor & 0xff;
        const byte = this.#refill() ?? 0;
        this.#holding = null;
        this.#update();
        return byte;
      }
      case UART_IER:
        return this.#lcr & LCR_DLAB ? this.#divisor >>> 8 : this.#ier;
      case UART_IIR: {
        const iir = this.#identify();
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if (iir === IIR_THR_EMPTY) {
          this.#thrEmptyPending = false;
          this.#update();
        }
        return iir | (this.#fifos ? IIR_FIFOS_ENABLED : 0);
      }
      case UART_LCR:
        return this.#lcr;
      case UART_MCR:
        return this.#mcr;
      case UART_LSR:
        return LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY | (this.#refill() === null ? 0 : LSR_DATA_READY);
      case UART_MSR:
        return MSR_LINES_UP;
      case UART_SCR:
        return this.#scr;
      default:
        return 0;
    }
  }

  writeRegister(offset: number, value: number, mask: number): void {
    // Registers are 8 bits wide: only the low byte lane carries one.
    if (!(mask & 0xff)) return;
    const byte = value & 0xff;
    switch (offset >> REGISTER_SHIFT) {
      case UART_RBR:
        if (this.#lcr & LCR_DLAB) {
          this.#divisor = (this.#divisor & 0xff00) | byte;
        } else {
          this.#transmit(byte);
        }
        return;
      case UART_IER:
        if (this.#lcr & LCR_DLAB) {
          this.#divisor = (this.#divisor & 0xff) | (byte << 8);
          return;
        }
        // Enabling the THRE interrupt while THR is empty raises it at once, as on a 16550.
        if (byte & ~this.#ier & IER_THR_EMPTY) this.#thrEmptyPending = true;
        this.#ier = byte & (IER_RX_AVAILABLE | IER_THR_EMPTY | IER_LINE_STATUS | IER_MODEM_STATUS);
        this.#update();
        return;
      case UART_IIR:
        this.#fifos = (byte & FCR_ENABLE) !== 0;
        if (byte & FCR_CLEAR_RX) this.#clearReceiver();
        this.#update();
        return;
      case UART_LCR:
        this.#lcr = byte;
        return;
      case UART_MCR:
        this.#mcr = byte & 0x1f;
        return;
      case UART_SCR:
        this.#scr = byte;
        return;
      default:
        return;
    }
  }

  #transmit(byte: number): void {
    // In loopback the transmitter feeds the receiver instead of the line.
    if (this.#mcr & MCR_LOOPBACK) this.console.writeInput(Uint8Array.of(byte));
    else this.console.write(Uint8Array.of(byte));
    this.#thrEmptyPending = true;
    this.#update();
  }

  #clearReceiver(): void {
    this.#holding = null;
    this.console.readInput(CONSOLE_INPUT_FIFO_BYTES);
  }

  /** The byte in RBR, taking the next from the input FIFO when RBR is empty. */
  #refill(): number | null {
    if (this.#holding === null) {
      const next = this.console.readInput(1);
      if (next.length > 0) this.#holding = next[0];
    }
    return this.#holding;
  }

  /** The highest-priority interrupt condition, as IIR bits 3:0. */
  #identify(): number {
    if ((this.#ier & IER_RX_AVAILABLE) && this.#refill() !== null) return IIR_RX_AVAILABLE;
    if ((this.#ier & IER_THR_EMPTY) && this.#thrEmptyPending) return IIR_THR_EMPTY;
    return IIR_NO_INTERRUPT;
  }

  /** Drives the interrupt line: a raise when some condition comes up. */
  #update(): void {
    const asserted = this.#identify() !== IIR_NO_INTERRUPT;
    if (asserted && !this.#asserted) {
      this.#interruptsRaised++;
      this.interrupts.raise(this.irq);
    }
    this.#asserted = asserted;
  }
}
