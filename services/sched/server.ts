// The sched service's RPC surface. Processes, exec and the system calls arrive with issue #3; the
// scheduler proper (runqueues, priorities, balancing) with the seed 1.5 scheduler work.
import { SchedService } from "../../gen/astra/sched/v1/sched_pb.ts";
import type { ServiceModule, SystemConfig } from "../../lib/module.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";

const PROCESS_WORK = "issue #3 (exec, processes and the first system calls)";
const SCHEDULER_WORK = "the scheduler work of seed 1.5 (runqueues, preemption, load balancing)";
const SCHEDULER_METHODS = [
  "createThread",
  "removeThread",
  "yield",
  "tick",
  "schedule",
  "setPriority",
  "setAffinity",
  "sleep",
  "wake",
  "block",
  "unblock",
  "getCurrentThread",
  "loadBalance",
];

export function createSched(_peers: unknown, config: SystemConfig): ServiceModule {
  const cpus = config.cpus;
  const bound = bindService("sched", SchedService, {
    ...pendingMethods(SchedService, PROCESS_WORK),
    ...pendingMethods(SchedService, SCHEDULER_WORK, SCHEDULER_METHODS),
    // Until the first exec there are no processes or threads: every counter is a real zero.
    getStatistics: () => ({
      cpus: Array.from({ length: cpus }, (_, cpu) => ({ cpu, runnableByPriority: [0, 0, 0, 0, 0] })),
    }),
  });
  return {
    name: "sched",
    bound: [bound],
    start: () =>
      Promise.resolve(`${cpus} per-CPU runqueues ready, no processes yet (init arrives with issue #3)`),
    stop: () => Promise.resolve(),
  };
}
