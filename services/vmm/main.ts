import { runServiceMain } from "../../lib/host.ts";
import { createVmm } from "./server.ts";

await runServiceMain("vmm", createVmm, Deno.args);
