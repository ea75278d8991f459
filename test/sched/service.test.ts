// The sched service in the running system: every service embedded over the in-process transport,
// the machine's CPUs running the guest with its trap path to sched, vmm and storage. Real static
// ppc64le programs built by the cross compiler exit with what they computed, catch signals, die
// of faults, fork, exec, wait and run threads; a synthetic program that spins lets the test look at a fresh process from outside (its
// mappings in vmm, its initial stack through the machine) and kill it while a Wait blocks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { ChildOutcome, ProcessState, SchedService } from "../../gen/astra/sched/v1/sched_pb.ts";
import { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { MappingKind, MappingRole, VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { AstraError, Errno } from "../../lib/errors.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../lib/host.ts";
import { type Client, client } from "../../lib/rpc.ts";
import { loadFactory } from "../../services/index.ts";
import { createMachine } from "../../services/machine/server.ts";
import { peerKernelSide } from "../../services/machine/trap_path.ts";
import { AT_EXECFN, AT_HWCAP, AT_PAGESZ, AT_PLATFORM } from "../../services/sched/auxv.ts";
import { STACK_TOP } from "../../services/sched/exec.ts";
import { SIGABRT, SIGKILL, SIGSEGV, SIGTERM } from "../../lib/linux/signals.ts";
import { buildElf, TEXT_VADDR, validExecSpec } from "./elf-image.ts";

const PROGRAMS = new URL("programs/", import.meta.url).pathname;
const COMPILER = "powerpc64le-linux-gnu-gcc";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let system: EmbeddedSystem;
let root: string;
let dataDir: string;
let sched: Client<typeof SchedService>;
let vmm: Client<typeof VmmService>;
let machine: Client<typeof MachineService>;

async function compile(name: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(COMPILER, {
    args: ["-static", "-O2", "-Wall", "-Werror", "-pthread", "-o", `${root}/${name}`, `${PROGRAMS}${name}.c`],
  }).output();
  if (code !== 0) throw new Error(`${COMPILER} failed on ${name}.c: ${decoder.decode(stderr)}`);
}

/** A static executable whose entry is `b .`: it spins without touching its stack. */
function spinningProgram(): Uint8Array {
  const spec = validExecSpec();
  spec.contents.push({ offset: 0x180, bytes: new Uint8Array([0x00, 0x00, 0x00, 0x48]) });
  return buildElf(spec);
}

function run(program: string, args: string[] = [], env: string[] = []) {
  return sched.createProcess({
    programPath: program,
    argv: [program, ...args].map((a) => encoder.encode(a)),
    envp: env.map((e) => encoder.encode(e)),
  });
}

async function outcomeOf(program: string, args: string[] = [], env: string[] = []) {
  const { pid } = await run(program, args, env);
  return await sched.wait({ callerPid: 0, pid });
}

async function errnoOf(promise: Promise<unknown>): Promise<Errno> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  root = await Deno.makeTempDir({ prefix: "astra-sched-root-" });
  dataDir = await Deno.makeTempDir({ prefix: "astra-sched-data-" });
  await Promise.all(["exit_args", "signals", "faults", "fork_exec"].map(compile));
  await Deno.writeFile(`${root}/spin`, spinningProgram(), { mode: 0o755 });
  await Deno.writeTextFile(`${root}/script`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  system = await bootEmbedded(
    async (name) =>
      name === "machine"
        ? (peers, config) => createMachine(peers, config, undefined, peerKernelSide)
        : await loadFactory(name),
    { memoryBytes: 128 * 1024 * 1024, numaNodes: 1, cpus: 2, dataDir },
  );
  const transport = system.router.transport();
  sched = client(SchedService, transport, "test");
  vmm = client(VmmService, transport, "test");
  machine = client(MachineService, transport, "test");
  await client(VfsService, transport, "test").mountHostFolder({
    hostPath: root,
    mountPoint: encoder.encode("/"),
  });
}, 120_000);

afterAll(async () => {
  await system?.shutdown();
  await Deno.remove(root, { recursive: true });
  await Deno.remove(dataDir, { recursive: true });
});

describe("programs run by sched", () => {
  it("a program gets its arguments and environment and its exit code comes back through Wait", async () => {
    const result = await outcomeOf("/exit_args", ["abcd"], ["SCHED_TEST=1"]);
    expect(result.outcome).toBe(ChildOutcome.EXITED);
    expect(result.exitCode).toBe(2 + 4 + 10);
    expect(result.waitStatus).toBe(16 << 8);
  });

  it("signals are caught, blocked, left pending and delivered on unblock", async () => {
    const result = await outcomeOf("./signals");
    expect({ outcome: result.outcome, exitCode: result.exitCode }).toEqual({
      outcome: ChildOutcome.EXITED,
      exitCode: 2,
    });
  });

  it("a fault, abort() and a signal to itself end the program with the signal", async () => {
    expect(await outcomeOf("/faults", ["segv"])).toMatchObject({
      outcome: ChildOutcome.DUMPED,
      signal: SIGSEGV,
    });
    expect(await outcomeOf("/faults", ["abort"])).toMatchObject({
      outcome: ChildOutcome.DUMPED,
      signal: SIGABRT,
    });
    expect(await outcomeOf("/faults", ["term"])).toMatchObject({
      outcome: ChildOutcome.KILLED,
      signal: SIGTERM,
    });
  });

  it("fork, execve, waitpid and threads work from inside the guest", async () => {
    const before = await sched.getStatistics({});
    const result = await outcomeOf("/fork_exec");
    expect({ outcome: result.outcome, exitCode: result.exitCode }).toEqual({
      outcome: ChildOutcome.EXITED,
      exitCode: 42,
    });
    const after = await sched.getStatistics({});
    expect(after.forks - before.forks).toBe(2n);
    expect(after.execs - before.execs).toBe(2n);
    expect(after.zombies).toBe(0n);
  });

  it("refuses what cannot run, leaving no process behind", async () => {
    const before = (await sched.listProcesses({})).processes.length;
    expect(await errnoOf(run("/script"))).toBe(Errno.ENOEXEC);
    expect(await errnoOf(run("/missing"))).toBe(Errno.ENOENT);
    expect((await sched.listProcesses({})).processes.length).toBe(before);
    expect(await errnoOf(sched.wait({ callerPid: 0, pid: -1, noHang: true }))).toBe(Errno.ECHILD);
  });
});

describe("a process seen from outside", () => {
  it("has its segments, stack and initial stack in place, and dies of SIGKILL while Wait blocks", async () => {
    const { pid, tid } = await run("/spin", ["x"], ["K=V"]);
    const { context } = await machine.getThreadContext({ tid });
    const spaceId = context!.spaceId;
    const sp = context!.registers!.gprs[1];

    const { mappings } = await vmm.listMappings({ spaceId });
    const text = mappings.find((m) => m.start === TEXT_VADDR)!;
    expect(text.kind).toBe(MappingKind.FILE_PRIVATE);
    expect(text.protection).toBe(1 | 4);
    expect(text.file?.path).toBe("/spin");
    const stack = mappings.find((m) => m.role === MappingRole.STACK)!;
    expect(stack.end).toBe(STACK_TOP);
    expect(stack.start <= sp).toBe(true);

    const { data } = await machine.readVirtual({ tid, address: sp, length: STACK_TOP - sp });
    const view = new DataView(data.buffer, data.byteOffset);
    const word = (offset: number) => view.getBigUint64(offset, true);
    const string = (address: bigint) => {
      const start = Number(address - sp);
      return decoder.decode(data.subarray(start, data.indexOf(0, start)));
    };
    expect(word(0)).toBe(2n);
    expect([string(word(8)), string(word(16))]).toEqual(["/spin", "x"]);
    expect(string(word(32))).toBe("K=V");
    const auxv = new Map<number, bigint>();
    for (let at = 48; word(at) !== 0n; at += 16) auxv.set(Number(word(at)), word(at + 8));
    const info = await machine.getInfo({});
    expect(auxv.get(AT_HWCAP)).toBe(info.hwcap & 0xffffffffn);
    expect(auxv.get(AT_PAGESZ)).toBe(4096n);
    expect(string(auxv.get(AT_PLATFORM)!)).toBe("power9");
    expect(string(auxv.get(AT_EXECFN)!)).toBe("/spin");

    const { process } = await sched.getProcess({ pid });
    expect(process).toMatchObject({ pid, ppid: 0, name: "spin", executablePath: "/spin" });
    expect([ProcessState.RUNNING, ProcessState.READY]).toContain(process!.state);

    let waited = false;
    const waiting = sched.wait({ callerPid: 0, pid }).finally(() => waited = true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(waited).toBe(false);
    expect((await sched.getStatistics({})).processes).toBeGreaterThanOrEqual(1n);
    expect((await sched.kill({ pid, signal: SIGKILL })).signalled).toBe(1);
    const result = await waiting;
    expect(result).toMatchObject({ pid, outcome: ChildOutcome.KILLED, signal: SIGKILL });
    // The address space is gone with the process; the machine drops the thread's context once it
    // has taken HandleSignal's TERMINATE, which may come just after Wait's answer.
    expect(await errnoOf(vmm.listMappings({ spaceId }))).not.toBe(Errno.UNSPECIFIED);
    for (let attempt = 0; attempt < 50; attempt++) {
      if (await machine.getThreadContext({ tid }).then(() => false, () => true)) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await errnoOf(machine.getThreadContext({ tid }))).toBe(Errno.ESRCH);
  });
});
