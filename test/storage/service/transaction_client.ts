// A client process for the disconnect test: begins a transaction on the root volume at the
// address given, writes KEY in it, prints the transaction id, and then waits to be killed.
import { LfsxService } from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import { client } from "../../../lib/rpc.ts";

const [address, key] = Deno.args;
const lfsx = client(LfsxService, new GrpcTransport(address));
const { transactionId } = await lfsx.begin({ volume: "root" });
await lfsx.put({
  transactionId,
  key: new TextEncoder().encode(key),
  value: new TextEncoder().encode("never"),
});
console.log(String(transactionId));
await new Promise(() => {});
