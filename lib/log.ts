// Structured logging: one JSON object per line on stderr, so a supervisor, `docker logs` or jq can
// read what every service says. ASTRA_LOG_LEVEL (debug|info|warn|error) sets the threshold.
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

function envLevel(): LogLevel {
  let value: string | undefined;
  try {
    value = Deno.env.get("ASTRA_LOG_LEVEL");
  } catch {
    // Without --allow-env the default applies.
  }
  return value && value in LEVELS ? value as LogLevel : "info";
}

let threshold = LEVELS[envLevel()];
const encoder = new TextEncoder();

export function setLogLevel(level: LogLevel): void {
  threshold = LEVELS[level];
}

export function logEnabled(level: LogLevel): boolean {
  return LEVELS[level] >= threshold;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function logger(service: string): Logger {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < threshold) return;
    const line = JSON.stringify({ ts: new Date().toISOString(), level, service, msg, ...fields }, bigintSafe);
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
