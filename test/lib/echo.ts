// The EchoService implementation the runtime tests serve over both transports.
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { client, type Transport } from "../../lib/rpc.ts";
import { bindService, type BoundService } from "../../lib/server.ts";
import { EchoService } from "../../gen/astra/testing/v1/echo_pb.ts";

export function echoService(name: string, peer?: () => Transport): BoundService {
  return bindService(name, EchoService, {
    echo(req) {
      if (req.failWithErrno) {
        throw new AstraError(Code.FAILED_PRECONDITION, req.failWithErrno as Errno, "asked to fail", {
          argument: "fail_with_errno",
        });
      }
      return { payload: req.payload, servedBy: name };
    },
    async sleep(req, ctx) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, req.delayMs);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      return { cancelledSeen: ctx.signal.aborted };
    },
    async *count(req, ctx) {
      for (let i = 0; i < req.count; i++) {
        if (req.failAfter && i === req.failAfter) {
          throw new AstraError(Code.INTERNAL, Errno.EIO, `failed after ${i} replies`);
        }
        if (ctx.signal.aborted) return;
        if (req.intervalMs) await new Promise((r) => setTimeout(r, req.intervalMs));
        yield { index: i };
      }
    },
    async concat(reqs) {
      const parts: string[] = [];
      for await (const r of reqs) parts.push(r.part);
      return { joined: parts.join(""), parts: parts.length };
    },
    async *chat(reqs) {
      for await (const r of reqs) yield { text: [...r.text].reverse().join("") };
    },
    async relay(req) {
      if (!peer) throw new AstraError(Code.FAILED_PRECONDITION, Errno.EINVAL, "no peer to relay to");
      const reply = await client(EchoService, peer(), name).echo({ payload: req.payload });
      return { payload: reply.payload, servedBy: reply.servedBy };
    },
  });
}
