// Debian's busybox-static (ppc64el), fetched with apt at test time: applets that need no fork, run
// directly as `./busybox APPLET ARGS` with inputs in the working directory. Under qemu-ppc64le each
// must give the known output where there is an obvious one; on AstraLisp OS (once `./astra run`
// exists) everything must be identical to qemu: stdout, stderr, exit status and files.

import { afterAll, describe, expect, test } from "vitest";
import { toolchainMissing } from "../requirements.ts";
import { fetchBusybox } from "./busybox.ts";
import {
  astraRunMissing,
  astraRunner,
  compareOutcomes,
  Limiter,
  PROCESS_LIMIT,
  qemuRunner,
  runGuest,
  type RunRequest,
} from "./harness.ts";

interface AppletCase {
  name: string;
  /** The applet and its arguments. */
  args: string[];
  stdin?: string;
  env?: Record<string, string>;
  files?: Record<string, string | Uint8Array>;
  /** The output every correct busybox gives, where it is obvious. */
  stdout?: string;
  exit?: number;
}

const TEXT = "The quick brown fox\njumps over the lazy dog\nThe end\n";
const NUMBERS = "10\n9\n100\n-3\n9\n42\n";
const PASSWD = "root:x:0:0:root:/root:/bin/sh\n" +
  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
  "bin:x:2:2:bin:/bin:/usr/sbin/nologin\n";
const FRUIT = "apple\napple\nbanana\ncherry\ncherry\ncherry\n";
const BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const LINES = Array.from({ length: 20 }, (_, i) => `line ${i + 1}\n`).join("");
// LINES compressed on the host (Python's bz2 at level 9, and gzip at level 9 with mtime 0).
const LINES_BZIP2 =
  "QlpoOTFBWSZTWTZD7scAADfZAAAQQAB/4AIlIABQpgAJoJT1UDepMTTjD135aX9xa8kkkyFFrmaoUVVVVHYUbCj4KNhR+LuSKcKEgbIfdjg=";
const LINES_GZIP =
  "H4sIAAAAAAACAy3MsQ2AIABFwZ4pHIGHIjqQhQlh/9KY/6rrbr7r2Sjzp4U9HKGHM4xwhTtQ1QcjnLDCCzPcsMOv1fIBmsTYT5cAAAA=";

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

const CASES: AppletCase[] = [
  { name: "echo", args: ["echo", "hello", "", "world"], stdout: "hello  world\n" },
  { name: "echo -n -e", args: ["echo", "-n", "-e", "tab\\there\\n\\x41"], stdout: "tab\there\nA" },
  {
    name: "printf",
    args: ["printf", "%05d|%-4s|%x|%c|%.2f\\n", "42", "ab", "255", "Z", "3.14159"],
    stdout: "00042|ab  |ff|Z|3.14\n",
  },
  { name: "expr arithmetic", args: ["expr", "6", "*", "7"], stdout: "42\n" },
  { name: "expr zero result exits 1", args: ["expr", "3", "-", "3"], stdout: "0\n", exit: 1 },
  { name: "expr string", args: ["expr", "length", "busybox"], stdout: "7\n" },
  { name: "seq", args: ["seq", "-s", ",", "1", "3", "10"], stdout: "1,4,7,10\n" },
  { name: "seq -w", args: ["seq", "-w", "8", "11"], stdout: "08\n09\n10\n11\n" },
  {
    name: "sort -n -r",
    args: ["sort", "-n", "-r", "numbers.txt"],
    files: { "numbers.txt": NUMBERS },
    stdout: "100\n42\n10\n9\n9\n-3\n",
  },
  { name: "sort -t -k -u", args: ["sort", "-t:", "-k3,3n", "-u", "passwd"], files: { passwd: PASSWD } },
  {
    name: "uniq -c",
    args: ["uniq", "-c", "fruit.txt"],
    files: { "fruit.txt": FRUIT },
    stdout: "      2 apple\n      1 banana\n      3 cherry\n",
  },
  { name: "uniq -d", args: ["uniq", "-d"], stdin: FRUIT, stdout: "apple\ncherry\n" },
  { name: "wc", args: ["wc", "-l", "-w", "-c"], stdin: TEXT },
  { name: "md5sum", args: ["md5sum"], stdin: "abc", stdout: "900150983cd24fb0d6963f7d28e17f72  -\n" },
  {
    name: "sha1sum of a file",
    args: ["sha1sum", "abc.txt"],
    files: { "abc.txt": "abc" },
    stdout: "a9993e364706816aba3e25717850c26c9cd0d89d  abc.txt\n",
  },
  {
    name: "sha256sum",
    args: ["sha256sum"],
    stdin: "abc",
    stdout: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n",
  },
  {
    name: "sha512sum",
    args: ["sha512sum"],
    stdin: "abc",
    stdout: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f  -\n",
  },
  {
    name: "md5sum -c",
    args: ["md5sum", "-c", "sums"],
    files: { "abc.txt": "abc", sums: "900150983cd24fb0d6963f7d28e17f72  abc.txt\n" },
    stdout: "abc.txt: OK\n",
  },
  { name: "base64", args: ["base64"], stdin: "hello, world", stdout: "aGVsbG8sIHdvcmxk\n" },
  { name: "base64 -d", args: ["base64", "-d"], stdin: "aGVsbG8sIHdvcmxk\n", stdout: "hello, world" },
  { name: "od -t x1", args: ["od", "-A", "x", "-t", "x1", "bytes.bin"], files: { "bytes.bin": BYTES } },
  { name: "od -c", args: ["od", "-c"], stdin: "tab\there\n\u0001\u00ff" },
  { name: "hexdump -C", args: ["hexdump", "-C", "bytes.bin"], files: { "bytes.bin": BYTES } },
  { name: "xxd", args: ["xxd", "-s", "200", "bytes.bin"], files: { "bytes.bin": BYTES } },
  {
    name: "cut",
    args: ["cut", "-d:", "-f1,3", "passwd"],
    files: { passwd: PASSWD },
    stdout: "root:0\ndaemon:1\nbin:2\n",
  },
  { name: "cut -c", args: ["cut", "-c", "2-4,8-"], stdin: TEXT },
  { name: "tr", args: ["tr", "a-z", "A-Z"], stdin: "hello, world\n", stdout: "HELLO, WORLD\n" },
  { name: "tr -d", args: ["tr", "-d", "aeiou"], stdin: "a quick brown\n", stdout: " qck brwn\n" },
  { name: "tr -s", args: ["tr", "-s", " "], stdin: "a  quick    brown\n", stdout: "a quick brown\n" },
  {
    name: "head -n",
    args: ["head", "-n", "3", "lines.txt"],
    files: { "lines.txt": LINES },
    stdout: "line 1\nline 2\nline 3\n",
  },
  { name: "head -c", args: ["head", "-c", "10"], stdin: LINES, stdout: "line 1\nlin" },
  {
    name: "tail -n",
    args: ["tail", "-n", "2", "lines.txt"],
    files: { "lines.txt": LINES },
    stdout: "line 19\nline 20\n",
  },
  { name: "tail -c", args: ["tail", "-c", "8"], stdin: LINES, stdout: "line 20\n" },
  {
    name: "cat -n",
    args: ["cat", "-n", "a.txt", "b.txt"],
    files: { "a.txt": "first\n", "b.txt": "second\nthird\n" },
    stdout: "     1\tfirst\n     2\tsecond\n     3\tthird\n",
  },
  { name: "tac", args: ["tac"], stdin: "1\n2\n3\n", stdout: "3\n2\n1\n" },
  { name: "rev", args: ["rev"], stdin: "abc\nhello\n", stdout: "cba\nolleh\n" },
  { name: "nl", args: ["nl", "-ba"], stdin: "a\n\nb\n" },
  { name: "fold", args: ["fold", "-w", "7"], stdin: TEXT },
  {
    name: "paste",
    args: ["paste", "-d,", "a.txt", "b.txt"],
    files: { "a.txt": "1\n2\n", "b.txt": "x\ny\n" },
    stdout: "1,x\n2,y\n",
  },
  { name: "expand", args: ["expand", "-t", "4"], stdin: "a\tb\tc\n", stdout: "a   b   c\n" },
  {
    name: "sed",
    args: ["sed", "-e", "s/o/0/g", "-e", "2d"],
    stdin: TEXT,
    stdout: "The quick br0wn f0x\nThe end\n",
  },
  {
    name: "awk",
    args: ["awk", "-F:", '{ s += $3; n = n $1 "," } END { printf "%d %s %.3f\\n", s, n, s / NR }', "passwd"],
    files: { passwd: PASSWD },
    stdout: "3 root,daemon,bin, 1.000\n",
  },
  {
    name: "grep -n -i",
    args: ["grep", "-n", "-i", "the", "text.txt"],
    files: { "text.txt": TEXT },
    stdout: "1:The quick brown fox\n2:jumps over the lazy dog\n3:The end\n",
  },
  { name: "grep -c -v", args: ["grep", "-c", "-v", "fox"], stdin: TEXT, stdout: "2\n" },
  { name: "grep no match exits 1", args: ["grep", "zebra"], stdin: TEXT, stdout: "", exit: 1 },
  {
    name: "factor",
    args: ["factor", "1234567890", "4294967297", "97"],
    stdout: "1234567890: 2 3 3 5 3607 3803\n4294967297: 641 6700417\n97: 97\n",
  },
  { name: "true", args: ["true"], stdout: "", exit: 0 },
  { name: "false", args: ["false"], stdout: "", exit: 1 },
  {
    name: "test",
    args: ["test", "3", "-lt", "5", "-a", "-f", "a.txt"],
    files: { "a.txt": "" },
    stdout: "",
    exit: 0,
  },
  { name: "[ ] false", args: ["[", "abc", "=", "abd", "]"], stdout: "", exit: 1 },
  { name: "basename", args: ["basename", "/usr/lib/libc.so.6", ".6"], stdout: "libc.so\n" },
  { name: "dirname", args: ["dirname", "/usr/lib/libc.so.6"], stdout: "/usr/lib\n" },
  {
    name: "cmp",
    args: ["cmp", "a.txt", "b.txt"],
    files: { "a.txt": "same start A\n", "b.txt": "same start B\n" },
    exit: 1,
  },
  {
    name: "crc32",
    args: ["crc32", "check.txt"],
    files: { "check.txt": "123456789" },
    stdout: "cbf43926 check.txt\n",
  },
  { name: "uname", args: ["uname", "-s", "-m"], stdout: "Linux ppc64le\n" },
  { name: "env -i", args: ["env", "-i", "X=1", "Y=two words"], stdout: "X=1\nY=two words\n" },
  { name: "env", args: ["env"], env: { ONLY: "this" }, stdout: "ONLY=this\n" },
  { name: "sleep", args: ["sleep", "0.05"], stdout: "", exit: 0 },
  { name: "bzip2 round trip", args: ["bzip2", "-c", "lines.txt"], files: { "lines.txt": LINES } },
  {
    name: "bunzip2",
    args: ["bunzip2", "-c", "lines.txt.bz2"],
    files: { "lines.txt.bz2": fromBase64(LINES_BZIP2) },
    stdout: LINES,
  },
  {
    name: "gunzip",
    args: ["gunzip", "-c", "lines.txt.gz"],
    files: { "lines.txt.gz": fromBase64(LINES_GZIP) },
    stdout: LINES,
  },
  { name: "gzip from stdin", args: ["gzip", "-c", "-9"], stdin: LINES },
  { name: "mkdir -p", args: ["mkdir", "-p", "a/b/c", "d"], stdout: "" },
  {
    name: "rm -r",
    args: ["rm", "-r", "tree", "loose.txt"],
    files: {
      "tree/x/1.txt": "1",
      "tree/y/2.txt": "2",
      "tree/3.txt": "3",
      "loose.txt": "",
      "kept.txt": "kept",
    },
    stdout: "",
  },
  {
    name: "rmdir",
    args: ["rmdir", "empty", "full"],
    files: { "empty/.keep": "", "full/file": "x" },
    exit: 1,
  },
  {
    name: "cp -r",
    args: ["cp", "-r", "src", "dst"],
    files: { "src/a.txt": "a\n", "src/sub/b.txt": "b\n" },
    stdout: "",
  },
  {
    name: "mv",
    args: ["mv", "old.txt", "dir/new.txt"],
    files: { "old.txt": "moving\n", "dir/.keep": "" },
    stdout: "",
  },
  { name: "truncate", args: ["truncate", "-s", "1000", "sized.bin"], stdout: "" },
  { name: "tee", args: ["tee", "copy.txt"], stdin: TEXT, stdout: TEXT },
  {
    name: "dd",
    args: ["dd", "if=bytes.bin", "of=part.bin", "bs=7", "count=3", "skip=2", "status=none"],
    files: { "bytes.bin": BYTES },
    stdout: "",
  },
  {
    name: "ls -1a",
    args: ["ls", "-1a", "dir"],
    files: { "dir/b": "", "dir/a": "", "dir/.hidden": "", "dir/c/d": "" },
    stdout: ".\n..\n.hidden\na\nb\nc\n",
  },
  { name: "ls -R", args: ["ls", "-R", "dir"], files: { "dir/b": "", "dir/a": "", "dir/c/d": "" } },
  {
    name: "strings",
    args: ["strings", "-n", "3", "mixed.bin"],
    files: { "mixed.bin": new Uint8Array([0, 65, 66, 67, 68, 0, 1, 2, 120, 121, 10, 200, 104, 105, 106, 0]) },
  },
  { name: "dos2unix", args: ["dos2unix"], stdin: "one\r\ntwo\r\n", stdout: "one\ntwo\n" },
  { name: "uuencode", args: ["uuencode", "-m", "name"], stdin: "hello\n" },
];

const RUN_TIMEOUT_MS = 60_000;
const ASTRA_TIMEOUT_MS = 240_000;

function requestFor(binary: string, c: AppletCase, timeoutMs: number): RunRequest {
  return {
    binary,
    name: "busybox",
    args: c.args,
    env: c.env ?? {},
    stdin: c.stdin ?? "",
    files: c.files,
    timeoutMs,
  };
}

// Resolved while the file is collected, so that a skip can say why.
let missing = toolchainMissing();
let binary = "";
let scratch = "";
if (!missing) {
  scratch = await Deno.makeTempDir({ prefix: "astra-busybox-" });
  const fetched = await fetchBusybox(scratch);
  if ("reason" in fetched) {
    if (Deno.env.get("ASTRA_REQUIRE_TOOLCHAIN") === "1") {
      throw new Error(
        `Debian's busybox-static could not be fetched (${fetched.reason}), and ASTRA_REQUIRE_TOOLCHAIN=1 says this run must not skip it`,
      );
    }
    missing = `Debian's busybox-static could not be fetched: ${fetched.reason}`;
  } else {
    binary = fetched.binary;
  }
}
const astraMissing = missing ?? await astraRunMissing();
const limiter = new Limiter(PROCESS_LIMIT);

afterAll(async () => {
  if (scratch) await Deno.remove(scratch, { recursive: true });
});

describe.skipIf(missing !== undefined)(
  `busybox applets under qemu-ppc64le${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    test("covers at least 15 applets", () => {
      expect(new Set(CASES.map((c) => c.args[0])).size).toBeGreaterThanOrEqual(15);
    });

    for (const c of CASES) {
      test.concurrent(c.name, async () => {
        const request = requestFor(binary, c, RUN_TIMEOUT_MS);
        const [outcome, again] = await Promise.all([
          runGuest(qemuRunner, request, scratch, limiter),
          runGuest(qemuRunner, request, scratch, limiter),
        ]);
        const stderr = new TextDecoder().decode(outcome.stderr);
        expect(outcome.timedOut).toBe(false);
        expect(outcome.status, `exit status (stderr: ${stderr})`).toBe(c.exit ?? 0);
        if (c.stdout !== undefined) expect(new TextDecoder().decode(outcome.stdout)).toBe(c.stdout);
        expect(compareOutcomes(outcome, { ...again, runner: "qemu again" }), "two runs differ").toEqual([]);
      }, 2 * RUN_TIMEOUT_MS);
    }
  },
);

describe.skipIf(astraMissing !== undefined)(
  `busybox applets on AstraLisp OS against qemu-ppc64le${astraMissing ? ` (skipped: ${astraMissing})` : ""}`,
  () => {
    for (const transport of ["embedded", "grpc"] as const) {
      describe(`${transport} transport`, () => {
        for (const c of CASES) {
          test.concurrent(c.name, async () => {
            const [reference, astra] = await Promise.all([
              runGuest(qemuRunner, requestFor(binary, c, RUN_TIMEOUT_MS), scratch, limiter),
              runGuest(astraRunner(transport), requestFor(binary, c, ASTRA_TIMEOUT_MS), scratch, limiter),
            ]);
            expect(compareOutcomes(reference, astra)).toEqual([]);
          }, 2 * ASTRA_TIMEOUT_MS);
        }
      });
    }
  },
);
