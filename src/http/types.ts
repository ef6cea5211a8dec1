/** The parts of Node's HTTP/1.1 and HTTP/2 compat request and response that we use. */
import type http from "node:http";
import type http2 from "node:http2";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;

export interface NodeResponse {
  readonly headersSent: boolean;
  statusCode: number;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  writeHead(status: number, headers?: http.OutgoingHttpHeaders): unknown;
  write(chunk: string | Uint8Array): boolean;
  end(chunk?: string | Uint8Array): unknown;
  on(event: "close" | "finish", listener: () => void): unknown;
}

export type RequestListener = (req: NodeRequest, res: NodeResponse) => void;
