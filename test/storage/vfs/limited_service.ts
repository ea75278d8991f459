// Run by limited.test.ts in a Deno process with the permissions a standalone storage service has
// (lib/config.ts servicePermissions): a VFS over the host folder named by the first argument,
// making the calls those permissions bear on. Prints each call's errno (0 for success) as JSON.
import { AstraError } from "../../../lib/errors.ts";
import { AT_FDCWD } from "../../../services/storage/vfs/linux.ts";
import { streamStat } from "../../../services/storage/vfs/streams.ts";
import { Vfs } from "../../../services/storage/vfs/vfs.ts";

// No stream is used: every one is a pipe that is never read or written.
const stream = { name: "pipe:[1]", stat: () => streamStat(false, 1, 0, 0) };
const vfs = new Vfs({ stdio: { stdin: stream, stdout: stream, stderr: stream, console: stream } });
vfs.mountHostFolder(Deno.args[0], "/");
vfs.attachProcess(1, { inheritance: "new" });
const errno = (call: () => unknown) => {
  try {
    call();
    return 0;
  } catch (err) {
    if (err instanceof AstraError) return err.errno;
    throw err;
  }
};
console.log(JSON.stringify({
  symlink: errno(() => vfs.symlinkat(1, "file", AT_FDCWD, "link")),
  link: errno(() => vfs.linkat(1, AT_FDCWD, "file", AT_FDCWD, "hard", 0)),
  chmod: errno(() => vfs.fchmodat(1, AT_FDCWD, "file", 0o600)),
  chown: errno(() => vfs.fchownat(1, AT_FDCWD, "file", undefined, undefined, 0)),
  utimensat: errno(() => vfs.utimensat(1, AT_FDCWD, "file", undefined, 0)),
  statfs: errno(() => vfs.statfs(1, "file")),
}));
vfs.shutdown();
