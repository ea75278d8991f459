// What the CLI's command groups (`astra storage …`, `astra machine …`) share: their options parsed,
// --help and a missing command answered with the usage, a usage mistake answered with the usage and
// exit code 2, and a failed call with its gRPC status and errno and exit code 1.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { AstraError } from "../lib/errors.ts";

/** A mistake in the command line: the usage follows the message. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ options: O; allowPositionals: true }>
>["values"];

/** A non-negative whole number given on the command line. */
export function wholeNumber(text: string | undefined, what: string): bigint {
  if (text === undefined || !/^\d+$/.test(text)) {
    throw new UsageError(`${what} must be a whole number, not ${text}`);
  }
  return BigInt(text);
}

/**
 * Parses `args` as `COMMAND [ARGS...] [OPTIONS]` (with --help always an option) and runs `dispatch`
 * on the command; returns the process exit code.
 */
export async function runSubcommand<O extends Options>(
  args: string[],
  options: O,
  usage: string,
  dispatch: (command: string, rest: string[], values: Values<O>) => Promise<void>,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { ...options, help: { type: "boolean", short: "h" } },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  const help = (values as { help?: boolean }).help === true;
  if (help || !command) {
    (help ? console.log : console.error)(usage);
    return help ? 0 : 2;
  }
  try {
    await dispatch(command, rest, values as Values<O>);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n\n${usage}`);
      return 2;
    }
    console.error(`error: ${err instanceof AstraError ? err.describe() : String(err)}`);
    return 1;
  }
}
