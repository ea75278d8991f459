// The machine as a standalone service: the common service flags, and the device flags of
// config.ts (--ahci-ports, --sata-disks, --nvme-namespaces), which override their environment
// variables.
import { runServiceMain } from "../../lib/host.ts";
import { DEVICE_SETTINGS, deviceConfigFrom, type DeviceFlag } from "./config.ts";
import { createMachine } from "./server.ts";

/** Takes the device flags (`--name value` or `--name=value`) out of `args`. */
function splitDeviceFlags(args: string[]): { flags: Partial<Record<DeviceFlag, string>>; rest: string[] } {
  const flags: Partial<Record<DeviceFlag, string>> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]);
    if (!m || !(m[1] in DEVICE_SETTINGS)) {
      rest.push(args[i]);
      continue;
    }
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    flags[m[1] as DeviceFlag] = value;
  }
  return { flags, rest };
}

const { flags, rest } = splitDeviceFlags(Deno.args);
const devices = deviceConfigFrom(flags);
await runServiceMain("machine", (peers, config) => createMachine(peers, config, devices), rest);
