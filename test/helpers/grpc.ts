import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** A request of the test Echo service (test/fixtures/echo.proto). */
export interface EchoRequest {
  text?: string;
  count?: number;
  fail_code?: number;
  fail_message?: string;
  delay_ms?: number;
}

/** A reply of the test Echo service. */
export interface EchoReply {
  text: string;
  index: number;
}

/** What a test gets back from a call: the reply or the error, and the metadata that came with it. */
export interface CallResult<T> {
  readonly value: T | null;
  readonly error: grpc.ServiceError | null;
  readonly headers: grpc.Metadata | null;
}

/** A client of the Echo service. */
export interface EchoClient {
  unary(request: EchoRequest, deadlineMs?: number): Promise<CallResult<EchoReply>>;
  /** A server-streaming call: every reply, then the status (with its trailers as metadata). */
  stream(request: EchoRequest): Promise<{ replies: EchoReply[]; status: grpc.StatusObject }>;
  close(): void;
}

type Ctor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;

const definition = loadSync(fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url)), { keepCase: true, defaults: true });
const service = (grpc.loadPackageDefinition(definition) as unknown as { meridian: { test: { Echo: Ctor & { service: grpc.ServiceDefinition } } } }).meridian.test.Echo;

/** A running gRPC server of the Echo service on 127.0.0.1. */
export interface EchoServer {
  readonly port: number;
  /** Metadata of every call received, in order. */
  readonly seen: grpc.Metadata[];
  /** Stops at once, cutting calls in flight. */
  kill(): void;
}

/** Starts the Echo service, plaintext (h2c) or over TLS when `tls` is given. */
export async function startEchoServer(tls?: { cert: string; key: string }): Promise<EchoServer> {
  const server = new grpc.Server();
  const seen: grpc.Metadata[] = [];
  server.addService(service.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      seen.push(call.metadata);
      const req = call.request;
      setTimeout(() => {
        if ((req.fail_code ?? 0) !== 0) callback({ code: req.fail_code as number, details: req.fail_message ?? '' });
        else callback(null, { text: `echo ${req.text ?? ''}`, index: 0 });
      }, req.delay_ms ?? 0);
    },
    Stream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      seen.push(call.metadata);
      const count = call.request.count ?? 0;
      for (let i = 0; i < count; i++) call.write({ text: `${call.request.text ?? ''} ${i}`, index: i });
      const trailers = new grpc.Metadata();
      trailers.set('x-stream-trailer', `sent ${count}`);
      call.end(trailers);
    },
  });
  const credentials = tls === undefined ? grpc.ServerCredentials.createInsecure() : grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }]);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err === null ? resolve(p) : reject(err))));
  return { port, seen, kill: () => server.forceShutdown() };
}

/**
 * A client of the Echo service at `address` (`host:port`): plaintext (h2c
 * prior knowledge), or TLS trusting `caPem`; `authority` is sent as :authority.
 */
export function echoClient(address: string, options: { caPem?: string; authority?: string } = {}): EchoClient {
  const credentials = options.caPem === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(Buffer.from(options.caPem));
  const channelOptions: grpc.ChannelOptions = options.authority === undefined ? {} : { 'grpc.default_authority': options.authority };
  const client = new service(address, credentials, channelOptions) as grpc.Client & {
    Unary(request: EchoRequest, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, value?: EchoReply) => void): grpc.ClientUnaryCall;
    Stream(request: EchoRequest, options: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  };
  return {
    unary(request, deadlineMs = 10_000) {
      return new Promise((resolve) => {
        let headers: grpc.Metadata | null = null;
        const call = client.Unary(request, { deadline: Date.now() + deadlineMs }, (error, value) => resolve({ value: value ?? null, error, headers }));
        call.on('metadata', (m: grpc.Metadata) => (headers = m));
      });
    },
    stream(request) {
      return new Promise((resolve, reject) => {
        const replies: EchoReply[] = [];
        const call = client.Stream(request, { deadline: Date.now() + 10_000 });
        call.on('data', (reply: EchoReply) => replies.push(reply));
        call.on('error', () => undefined);
        call.on('status', (status: grpc.StatusObject) => resolve({ replies, status }));
        call.on('close', () => setTimeout(() => reject(new Error('no status')), 1_000).unref());
      });
    },
    close: () => client.close(),
  };
}

export { grpc };
