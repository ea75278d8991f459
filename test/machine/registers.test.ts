// A thread's register file through a context switch (Cpu → context → Cpu) and through the
// contract's Registers message, field by field; malformed messages are refused by field.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { RegistersSchema } from "../../gen/astra/machine/v1/cpu_pb.ts";
import { AstraError } from "../../lib/errors.ts";
import { FlatMemory } from "../../services/machine/cpu/flat.ts";
import { Cpu } from "../../services/machine/cpu/interpreter.ts";
import {
  loadCpu,
  RegisterFile,
  registersFromMessage,
  registersToMessage,
  saveCpu,
} from "../../services/machine/registers.ts";
import { Random } from "./cpu/generators.ts";

function randomFile(seed: number): RegisterFile {
  const random = new Random(seed);
  const registers = new RegisterFile();
  for (let n = 0; n < 32; n++) registers.setGpr(n, random.u64());
  registers.pc = random.u64() & ((1n << 52n) - 4n);
  registers.lr = random.u64();
  registers.ctr = random.u64();
  registers.tar = random.u64();
  registers.dscr = random.u64();
  registers.ppr = random.u64();
  registers.amrLo = random.next() | 0;
  registers.amrHi = random.next() | 0;
  // XER's defined bits: SO OV CA, OV32 CA32, the byte count.
  registers.xer = (random.next() & 0xe00c007f) | 0;
  registers.cr = random.next() | 0;
  for (let i = 0; i < registers.vsr.length; i++) registers.vsr[i] = random.below(256);
  registers.fpscr64 = random.u64();
  registers.vscr = random.below(2) ? 0x10001 : 0x10000;
  registers.vrsave = random.next() | 0;
  registers.floatingPointExceptions = random.below(2) === 1;
  return registers;
}

describe("register file", () => {
  it("survives a save to a context and a load back into a CPU, every register, with the reservation lost", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const original = randomFile(seed);
      const cpu = new Cpu(new FlatMemory(0x10000, 4096), () => 0);
      cpu.reservationValid = true;
      loadCpu(original, cpu);
      expect(cpu.reservationValid).toBe(false);
      const saved = new RegisterFile();
      saveCpu(cpu, saved);
      expect(saved).toEqual(original);
    }
  });

  it("keeps a pc beyond 2^53 exact through the CPU", () => {
    const registers = randomFile(3);
    registers.pc = 0xc000_0000_0000_1000n;
    const cpu = new Cpu(new FlatMemory(0x10000, 4096), () => 0);
    loadCpu(registers, cpu);
    const saved = new RegisterFile();
    saveCpu(cpu, saved);
    expect(saved.pc).toBe(0xc000_0000_0000_1000n);
  });

  it("round-trips through the Registers message, VSRs most significant byte first", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const original = randomFile(seed);
      const message = create(RegistersSchema, registersToMessage(original));
      expect(message.gprs).toHaveLength(32);
      expect(message.vsrs).toHaveLength(64);
      expect(message.vsrs[5][0]).toBe(original.vsr[16 * 5 + 15]);
      const back = registersFromMessage(message, original, "registers");
      expect(back).toEqual(original);
    }
  });

  it("refuses malformed messages, naming the field", () => {
    const base = new RegisterFile();
    const field = (init: Parameters<typeof create<typeof RegistersSchema>>[1]) => {
      try {
        registersFromMessage(create(RegistersSchema, init), base, "registers");
      } catch (error) {
        expect(error).toBeInstanceOf(AstraError);
        return (error as AstraError).detail.argument;
      }
      throw new Error("accepted");
    };
    expect(field({ gprs: [1n, 2n] })).toBe("registers.gprs");
    expect(field({ vsrs: Array.from({ length: 3 }, () => new Uint8Array(16)) })).toBe("registers.vsrs");
    expect(field({ vsrs: Array.from({ length: 64 }, (_, i) => new Uint8Array(i === 9 ? 8 : 16)) })).toBe(
      "registers.vsrs",
    );
    expect(field({ xer: 1n << 40n })).toBe("registers.xer");
    expect(field({ vscr: 0x2 })).toBe("registers.vscr");
  });
});
