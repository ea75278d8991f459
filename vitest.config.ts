import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each file gets its own fork: services bind ports and spawn processes, and a crash in one
    // suite must not take the others down.
    pool: "forks",
    testTimeout: 30_000,
    // testcontainers' Ryuk reaper image cannot be pulled here; the container tests stop what they start.
    env: { TESTCONTAINERS_RYUK_DISABLED: "true" },
    hookTimeout: 60_000,
  },
});
