import { runServiceMain } from "../../lib/host.ts";
import { createPmm } from "./server.ts";

await runServiceMain("pmm", createPmm, Deno.args);
