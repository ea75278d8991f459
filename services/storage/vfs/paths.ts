// Guest paths: the byte strings a guest passes, checked and split the way Linux's lookup reads
// them. The host file APIs take UTF-8 text, so a path that is not UTF-8 cannot be named on the
// host folder and fails with EILSEQ.
import { Errno, vfsError } from "./errors.ts";
import { NAME_MAX, PATH_MAX } from "./linux.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** A path as lookup sees it: where it starts, its components and whether it ends in "/". */
export interface ParsedPath {
  absolute: boolean;
  /** Non-empty components, "." and ".." included (lookup gives them their meaning). */
  components: string[];
  /** The path ends in "/" (or is "/"): its last component must be a directory. */
  trailingSlash: boolean;
}

/** The text of a guest path; ENAMETOOLONG past PATH_MAX, EILSEQ when it is not UTF-8. */
export function pathText(path: Uint8Array | string, argument = "path"): string {
  const bytes = typeof path === "string" ? encoder.encode(path) : path;
  if (bytes.length >= PATH_MAX) {
    throw vfsError(Errno.ENAMETOOLONG, `path of ${bytes.length} bytes is longer than PATH_MAX`, argument);
  }
  if (bytes.includes(0)) throw vfsError(Errno.EINVAL, "path contains a NUL byte", argument);
  if (typeof path === "string") return path;
  try {
    return decoder.decode(bytes);
  } catch {
    throw vfsError(Errno.EILSEQ, "path is not UTF-8; host folders can only name UTF-8 paths", argument);
  }
}

export function parsePath(text: string, argument = "path"): ParsedPath {
  const components = text.split("/").filter((c) => c !== "");
  for (const component of components) {
    if (encoder.encode(component).length > NAME_MAX) {
      throw vfsError(Errno.ENAMETOOLONG, `path component longer than NAME_MAX: ${component}`, argument);
    }
  }
  return { absolute: text.startsWith("/"), components, trailingSlash: text.endsWith("/") };
}

/** "/" followed by the components: how a canonical guest path is written. */
export function joinPath(components: readonly string[]): string {
  return "/" + components.join("/");
}

export function pathBytes(text: string): Uint8Array {
  return encoder.encode(text);
}
