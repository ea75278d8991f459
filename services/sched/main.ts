import { runServiceMain } from "../../lib/host.ts";
import { createSched } from "./server.ts";

await runServiceMain("sched", createSched, Deno.args);
