// The calls whose host operations Deno permits only beyond what a standalone storage service is
// granted (lib/config.ts): each answers as Linux does for a file system that cannot do it.
import { expect, it } from "vitest";
import { servicePermissions } from "../../../lib/config.ts";
import { Errno } from "./helpers.ts";

const REPO = new URL("../../..", import.meta.url).pathname.replace(/\/$/, "");

it("a service limited to its folders makes no symbolic links (EPERM) and answers no statfs (ENOSYS)", async () => {
  const data = Deno.makeTempDirSync({ prefix: "astra-vfs-limited-" });
  try {
    const root = `${data}/root`;
    Deno.mkdirSync(root);
    Deno.writeTextFileSync(`${root}/file`, "text");
    const script = new URL("./limited_service.ts", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...servicePermissions("storage", REPO, data, [root]), script, root],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    expect(new TextDecoder().decode(output.stderr)).toBe("");
    expect(JSON.parse(new TextDecoder().decode(output.stdout))).toEqual({
      symlink: Errno.EPERM,
      link: 0,
      chmod: 0,
      chown: 0,
      utimensat: 0,
      statfs: Errno.ENOSYS,
    });
  } finally {
    Deno.removeSync(data, { recursive: true });
  }
});
