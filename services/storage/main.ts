import { runServiceMain } from "../../lib/host.ts";
import { createStorage } from "./server.ts";

await runServiceMain("storage", createStorage, Deno.args);
