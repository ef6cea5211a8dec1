/**
 * rtcplane.cluster.v1.MediaNodeService: media commands other nodes forward to this one, which
 * holds the conference's media. The forwarding node has checked the client (credential,
 * participant, stream); here only the cluster credential is checked (by the one auth
 * interceptor) and the command runs on this node's SFU, its refusals mapped to codes the
 * forwarding node turns back into the same errors (MediaNodeClients).
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type * as pb from "../../gen/rtcplane/cluster/v1/media_node_pb.js";
import type { MediaNodeService } from "../../gen/rtcplane/cluster/v1/media_node_pb.js";
import { requireCluster } from "../auth/caller.js";
import { alreadyExists, DomainError, failedPrecondition, invalidArgument } from "../errors.js";
import { type Media, NotSimulcastError, SdpError, StreamConflictError } from "../media/media.js";
import type { ConferenceRef } from "../media/media-types.js";

function ref(r: pb.ConferenceRef | undefined): ConferenceRef {
  if (r === undefined || r.appId === "" || r.conferenceId === "") throw invalidArgument("conference: is required");
  return { appId: r.appId, conferenceId: r.conferenceId };
}

/** The SFU's refusals as the codes MediaNodeClients reads back. */
function mapped<T>(work: () => Promise<T>): Promise<T> {
  return work().catch((e: unknown) => {
    if (e instanceof SdpError) throw invalidArgument(e.message);
    if (e instanceof StreamConflictError) throw alreadyExists(e.message);
    if (e instanceof NotSimulcastError) throw failedPrecondition(e.message);
    throw e;
  });
}

export class MediaNodeServiceImpl implements ServiceImpl<typeof MediaNodeService> {
  constructor(
    private readonly media: Media | undefined,
    /** This node's id in the media registry now (it changes when the node rejoins). */
    private readonly nodeId: () => string | undefined,
  ) {}

  /** This node's SFU, for a call meant for this node (a stale or misrouted one is refused). */
  private sfu(ctx: HandlerContext, req: { targetNodeId: string }): Media {
    requireCluster(ctx);
    if (this.media === undefined) throw new DomainError("unavailable", "this node runs no SFU");
    const self = this.nodeId();
    if (req.targetNodeId !== self) {
      throw new DomainError(
        "unavailable",
        `this is media node ${self ?? "(none)"}, not ${req.targetNodeId}: check NODE_URL, or the node was counted dead`,
      );
    }
    return this.media;
  }

  async publish(req: pb.PublishRequest, ctx: HandlerContext) {
    const media = this.sfu(ctx, req);
    const c = ref(req.conference);
    const published = await mapped(() =>
      media.publish(c, req.endpointId, req.streamId, req.sdpOffer, req.maxIncomingBitrate),
    );
    return { sdpAnswer: published.sdpAnswer };
  }

  async view(req: pb.ViewRequest, ctx: HandlerContext) {
    const media = this.sfu(ctx, req);
    const c = ref(req.conference);
    const sdpAnswer = await mapped(() =>
      media.view(c, req.streamId, req.viewerId, req.endpointId, req.owner, req.sdpOffer),
    );
    return { sdpAnswer };
  }

  async stopView(req: pb.StopViewRequest, ctx: HandlerContext) {
    const media = this.sfu(ctx, req);
    return { stopped: await media.stopView(ref(req.conference), req.streamId, req.viewerId, req.owner) };
  }

  async setViewLayers(req: pb.SetViewLayersRequest, ctx: HandlerContext) {
    const media = this.sfu(ctx, req);
    const c = ref(req.conference);
    const layers =
      req.temporalLayer === undefined
        ? { spatialLayer: req.spatialLayer }
        : { spatialLayer: req.spatialLayer, temporalLayer: req.temporalLayer };
    const set = await mapped(() => media.setViewLayers(c, req.streamId, req.viewerId, req.owner, layers));
    if (set === undefined) return { found: false };
    return {
      found: true,
      preferredSpatialLayer: set.preferred.spatialLayer,
      preferredTemporalLayer: set.preferred.temporalLayer,
      currentSpatialLayer: set.current?.spatialLayer,
      currentTemporalLayer: set.current?.temporalLayer,
    };
  }

  async unpublish(req: pb.UnpublishRequest, ctx: HandlerContext) {
    await this.sfu(ctx, req).unpublish(ref(req.conference), req.streamId);
    return {};
  }

  async setStreamBitrate(req: pb.SetStreamBitrateRequest, ctx: HandlerContext) {
    await this.sfu(ctx, req).setStreamBitrate(ref(req.conference), req.streamId, req.bitrate);
    return {};
  }
}
