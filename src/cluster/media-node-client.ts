/**
 * Calls another node's internal media service (rtcplane.cluster.v1.MediaNodeService) over
 * gRPC with the cluster credential, and turns its answers back into what this node's SFU
 * would have thrown: the SFU's own errors for its refusals, UNAVAILABLE when the node does
 * not answer in time.
 */
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { MediaNodeService } from "../../gen/rtcplane/cluster/v1/media_node_pb.js";
import { DomainError } from "../errors.js";
import { NotSimulcastError, SdpError, StreamConflictError } from "../media/media.js";
import type { Logger } from "../observability/log.js";
import type { MediaNode } from "./media-nodes.js";

export type MediaNodeClient = Client<typeof MediaNodeService>;

export class MediaNodeClients {
  private readonly clients = new Map<string, { client: MediaNodeClient; session: Http2SessionManager }>();
  private readonly credential: Interceptor;

  constructor(
    credential: string,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.credential = (next) => (req) => {
      req.header.set("authorization", `Bearer ${credential}`);
      return next(req);
    };
  }

  /** One client (one HTTP/2 session, kept) per node address. */
  private client(rpcUrl: string): MediaNodeClient {
    let known = this.clients.get(rpcUrl);
    if (known === undefined) {
      // A dead node's session is noticed by a ping, not only by the next call's timeout.
      const session = new Http2SessionManager(rpcUrl, { pingIntervalMs: 5_000, pingTimeoutMs: 2_000 });
      const transport = createGrpcTransport({
        baseUrl: rpcUrl,
        interceptors: [this.credential],
        defaultTimeoutMs: this.timeoutMs,
        sessionManager: session,
      });
      known = { client: createClient(MediaNodeService, transport), session };
      this.clients.set(rpcUrl, known);
    }
    return known.client;
  }

  /**
   * Runs `call` on `node`; its refusals come back as the SFU's errors
   * (`streamId` names the stream in them; FAILED_PRECONDITION is a single-layer stream only
   * for `layers` calls), its silence as UNAVAILABLE.
   */
  async on<T>(node: MediaNode, streamId: string, call: (c: MediaNodeClient) => Promise<T>, layers = false): Promise<T> {
    if (this.closed) throw new DomainError("unavailable", "this node is shutting down");
    const { nodeId, rpcUrl } = node;
    try {
      return await call(this.client(rpcUrl));
    } catch (e) {
      const err = ConnectError.from(e);
      switch (err.code) {
        case Code.InvalidArgument:
          throw new SdpError(err.rawMessage);
        case Code.AlreadyExists:
          throw new StreamConflictError(streamId);
        case Code.FailedPrecondition:
          if (layers) throw new NotSimulcastError(streamId);
          break;
        case Code.Unauthenticated:
          this.log.error(
            { nodeId, rpcUrl, err },
            "a media node refused the cluster credential: is CLUSTER_SECRET the same on every node?",
          );
          break;
        default:
          this.log.warn({ nodeId, rpcUrl, code: Code[err.code], err: err.rawMessage }, "a media node did not answer");
      }
      throw new DomainError(
        "unavailable",
        `the media node of this conference (${nodeId}) did not answer: ${err.rawMessage}; retry shortly`,
      );
    }
  }

  private closed = false;

  /** Closes the sessions to other nodes; later calls are refused. */
  close(): void {
    this.closed = true;
    for (const { session } of this.clients.values()) session.abort();
    this.clients.clear();
  }
}
