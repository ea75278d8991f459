import { runServiceMain } from "../../lib/host.ts";
import { createMachine } from "./server.ts";

await runServiceMain("machine", createMachine, Deno.args);
