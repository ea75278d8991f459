// Tests that need Docker or the PowerPC toolchain skip with the reason on a machine without them,
// and fail instead when CI requires them (ASTRA_REQUIRE_DOCKER=1, ASTRA_REQUIRE_TOOLCHAIN=1).

function commandWorks(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

function requirement(envVar: string, missing: () => string | undefined): string | undefined {
  const reason = missing();
  if (reason && Deno.env.get(envVar) === "1") {
    throw new Error(`${reason}, and ${envVar}=1 says this run must not skip it`);
  }
  return reason;
}

/** Why Docker tests cannot run here (undefined when they can). */
export function dockerMissing(): string | undefined {
  return requirement(
    "ASTRA_REQUIRE_DOCKER",
    () => commandWorks("docker", ["info"]) ? undefined : "no Docker engine answers `docker info`",
  );
}

/** Why cross-toolchain tests cannot run here (undefined when they can). */
export function toolchainMissing(): string | undefined {
  return requirement("ASTRA_REQUIRE_TOOLCHAIN", () => {
    for (const tool of ["powerpc64le-linux-gnu-gcc", "powerpc64le-linux-gnu-objdump", "qemu-ppc64le"]) {
      if (!commandWorks(tool, ["--version"])) return `${tool} is not installed`;
    }
    return undefined;
  });
}
