// The CRI client's gRPC side, run by the machine's node (lib/cri/transport.ts starts it): Bun 1.4.5's
// node:http2 client loses a reply now and then (a call waits for its deadline although the
// reply's frames reached the socket), so @grpc/grpc-js runs under node, the way it is made to.
//
// `node bridge.mjs SOCK PROTO`: one channel to unix socket SOCK, the services of PROTO
// (proto-loader: camelCase fields, int64 as numbers, enums as names, defaults set). On stdin,
// one JSON call a line: {"id":N,"service":"runtime"|"image","method":"RunPodSandbox",
// "req":{...},"timeoutMs":N}; on stdout, one answer a line: {"id":N,"res":{...}} or
// {"id":N,"err":{"code":N,"details":"..."}}. Bytes fields come as {"$b64":"..."}. The first
// line is {"ready":true} once the socket answers, or {"fatal":"..."}. Ends with stdin.
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const [sock, proto] = process.argv.slice(2);
const def = protoLoader.loadSync(proto, {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(def).runtime.v1;
const address = `unix://${sock}`;
const creds = grpc.credentials.createInsecure();
// ExecSync's output may be up to 16 MiB a stream (CRI caps it there).
const options = { "grpc.max_receive_message_length": 64 << 20 };
const clients = {
  runtime: new v1.RuntimeService(address, creds, options),
  image: new v1.ImageService(address, creds, options),
};

const send = (msg) =>
  process.stdout.write(
    `${JSON.stringify(msg, (_k, v) =>
      v && v.type === "Buffer" && Array.isArray(v.data)
        ? { $b64: Buffer.from(v.data).toString("base64") }
        : v,
    )}\n`,
  );

clients.runtime.waitForReady(Date.now() + 30_000, (err) => {
  if (err) {
    send({ fatal: `CRI socket ${sock}: ${err.message}` });
    process.exit(1);
  }
  send({ ready: true });
});

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const { id, service, method, req, timeoutMs } = JSON.parse(line);
  const client = clients[service];
  if (!client || typeof client[method] !== "function") {
    send({ id, err: { code: grpc.status.UNIMPLEMENTED, details: `no method ${method} in ${service}` } });
    return;
  }
  client[method](req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
    send(err ? { id, err: { code: err.code, details: err.details || err.message } } : { id, res }),
  );
});
lines.on("close", () => {
  clients.runtime.close();
  clients.image.close();
});
