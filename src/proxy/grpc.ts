/**
 * gRPC on the data plane. gRPC is HTTP/2 with its status in trailers; a
 * response with no message carries it in its only HEADERS frame instead
 * ("Trailers-Only", grpc/doc/PROTOCOL-HTTP2.md), and a client reads it there
 * only when that frame ends the stream. So the two kinds of answer that have
 * no body, an upstream's Trailers-Only answer and Meridian's own errors, are
 * written as one HEADERS frame with END_STREAM (H2Response.endWithHead), never
 * a head followed by an empty DATA frame.
 */
import type { DownstreamResponse } from './downstream.js';
import { H2Response } from './h2-messages.js';

/** The gRPC status codes Meridian answers with (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = Object.freeze({ cancelled: 1, deadlineExceeded: 4, unimplemented: 12, internal: 13, unavailable: 14 });

/**
 * Whether a Content-Type names gRPC: `application/grpc`, or with a `+format`
 * or parameters. gRPC-Web (`application/grpc-web*`) is not: it carries its
 * trailers in the body and works over HTTP/1.1 like any other request.
 */
export function isGrpcContentType(value: string): boolean {
  // Read for every request with a Content-Type: the `g` after `application/` rules out nearly all of them without allocating.
  const g = value.charCodeAt(12);
  if ((g !== 103 && g !== 71) || value.length < 16 || value.slice(0, 16).toLowerCase() !== 'application/grpc') return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */ || next === 32 /* SP */;
}

/** Whether a response answers a gRPC request: read only when Meridian writes an error itself. */
export function answersGrpc(res: DownstreamResponse): boolean {
  const raw = res.req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length === 12 && (raw[i] as string).toLowerCase() === 'content-type') return isGrpcContentType(raw[i + 1] as string);
  }
  return false;
}

/**
 * The gRPC status for one of Meridian's own HTTP error statuses: timeouts are
 * DEADLINE_EXCEEDED, no route (or method) UNIMPLEMENTED, an upstream that
 * failed or nothing to send to UNAVAILABLE (which gRPC clients may retry), a
 * client that went away CANCELLED, and a request Meridian refused INTERNAL.
 */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 504:
    case 408:
      return GRPC_STATUS.deadlineExceeded;
    case 404:
    case 405:
      return GRPC_STATUS.unimplemented;
    case 502:
    case 503:
      return GRPC_STATUS.unavailable;
    case 499:
      return GRPC_STATUS.cancelled;
    default:
      return GRPC_STATUS.internal;
  }
}

/** A grpc-message value: percent-encoded UTF-8 outside printable ASCII, and `%` itself (PROTOCOL-HTTP2.md). */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/** Whether a flat response header array carries `grpc-status`: a gRPC answer that has no body (Trailers-Only). */
export function isTrailersOnly(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'grpc-status') return true;
  return false;
}

/**
 * Writes a complete response as one HEADERS frame that ends the stream, when
 * the client speaks HTTP/2; returns false (nothing written) for an HTTP/1.x
 * client, which gets the head and an empty body from the caller instead.
 */
export function writeTrailersOnly(res: DownstreamResponse, status: number, headers: readonly string[]): boolean {
  if (!(res instanceof H2Response)) return false;
  res.endWithHead(status, headers);
  return true;
}

/** What of a catalog error a gRPC answer carries. */
export interface GrpcErrorInfo {
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

/**
 * Answers a gRPC request with one of Meridian's own errors: HTTP 200,
 * Trailers-Only, `grpc-status` and `grpc-message` from the catalog entry,
 * `x-meridian-error` as on every error; no body. Throws what writing throws.
 */
export function sendGrpcError(res: DownstreamResponse, error: GrpcErrorInfo, requestId: string | undefined): void {
  const headers = ['content-type', 'application/grpc', 'grpc-status', String(grpcStatusFor(error.status)), 'grpc-message', grpcMessage(error.message), 'x-meridian-error', error.code];
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  if (writeTrailersOnly(res, 200, headers)) return;
  headers.push('content-length', '0');
  res.writeHead(200, headers);
  res.end();
}
