/** rtcplane.conference.v1.ConferenceService: the conference API on every protocol. */
import type { JsonObject } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type * as pb from "../../gen/rtcplane/conference/v1/conference_pb.js";
import type { ConferenceEvent, IceCandidate } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { bearerCaller } from "../auth/caller.js";
import type {
  Actor,
  ConferenceAggregate,
  ConferenceRow,
  Conferences,
  MetadataRow,
} from "../conferences/conferences.js";
import { isoMillis, validateId } from "../conferences/conferences.js";
import { type Endpoints, MAX_ENDPOINTS_PER_USER_LOGIN } from "../endpoints/endpoints.js";
import {
  alreadyExists,
  type DomainError,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
  unauthenticated,
} from "../errors.js";
import { Media, type MediaPlane, NotSimulcastError, SdpError, StreamConflictError } from "../media/media.js";
import type { Principal } from "../oauth/access-tokens.js";
import type { CheckedPrincipal } from "../oauth/principals.js";
import { kRequestInfo } from "../observability/log.js";
import { iceCandidatesProblem } from "../validation.js";
import type { Callers } from "./caller.js";

const STREAM_TYPES = ["CAM", "MIC", "MIC_AND_CAM", "SCREEN"];
const MAX_LISTED = 1000;

function toSummary(c: ConferenceRow) {
  return { id: c.conferenceId, mode: c.mode, version: BigInt(c.version) };
}

function metadataMap(rows: MetadataRow[]) {
  const out: Record<string, { value: string; lastModified: string; userEndpointId: string; userId: string }> = {};
  for (const m of rows) {
    out[m.key] = {
      value: m.value,
      lastModified: isoMillis(m.lastModifiedMs),
      userEndpointId: m.userEndpointId,
      userId: m.userId,
    };
  }
  return out;
}

function toConference(a: ConferenceAggregate) {
  return {
    id: a.conference.conferenceId,
    creator: a.conference.creator,
    creatorEndpoint: a.conference.creatorEndpoint,
    empty: a.participants.length === 0,
    metadata: metadataMap(a.metadata),
    mode: a.conference.mode,
    organizationId: a.conference.appId,
    participants: a.participants.map((p) => ({
      id: p.endpointId,
      metadata: p.metadata as JsonObject,
      state: p.state,
      userId: p.userId,
      streams: a.streams
        .filter((s) => s.endpointId === p.endpointId)
        .map((s) => ({
          id: { id: s.streamId },
          metadata: s.metadata as JsonObject,
          type: s.type,
          videoBitrate: s.videoBitrate,
        })),
    })),
    version: BigInt(a.conference.version),
  };
}

/** Participants grouped by user (in join order), then endpoints, then streams. */
function toSimpleView(a: ConferenceAggregate) {
  const users = new Map<string, { id: string; endpoints: unknown[] }>();
  for (const p of a.participants) {
    let user = users.get(p.userId);
    if (user === undefined) {
      user = { id: p.userId, endpoints: [] };
      users.set(p.userId, user);
    }
    user.endpoints.push({
      id: p.endpointId,
      metadata: p.metadata as JsonObject,
      state: p.state,
      streams: a.streams
        .filter((s) => s.endpointId === p.endpointId)
        .map((s) => ({ id: s.streamId, metadata: s.metadata as JsonObject, type: s.type })),
    });
  }
  return {
    id: a.conference.conferenceId,
    metadata: metadataMap(a.metadata),
    mode: a.conference.mode,
    participants: [...users.values()],
    version: BigInt(a.conference.version),
  } as pb.ConferenceSimpleView;
}

function required(field: string, value: string): string {
  if (value === "") throw invalidArgument(`${field}: is required`);
  return value;
}

function mediaUnavailable(): DomainError {
  return failedPrecondition(
    "media is not available on this server: no mediasoup worker is installed (scripts/build-mediasoup-worker.sh)",
  );
}

export class ConferenceServiceImpl implements ServiceImpl<typeof pb.ConferenceService> {
  private readonly eventAnswers = new WeakMap<object, { events: ConferenceEvent[] }>();

  constructor(
    private readonly callers: Callers,
    private readonly conferences: Conferences,
    private readonly endpoints: Endpoints,
    private readonly defaultKeepAliveSeconds: number,
    /** This node's SFU, or the cluster's (which runs each command where the conference's media is). */
    private readonly media: MediaPlane | undefined,
  ) {}

  /** The conference a call is about, checked against a USER token's conference. */
  private scoped(ctx: HandlerContext, conferenceId: string): CheckedPrincipal {
    const p = bearerCaller(ctx);
    required("conferenceId", conferenceId);
    this.callers.requireConference(p, conferenceId);
    return p;
  }

  /** Who acts for an endpoint: a USER token's own user; for SERVICE the given or registered one. */
  private async actor(p: Principal, endpointId: string, userId = ""): Promise<Actor> {
    validateId("userEndpointId", required("userEndpointId", endpointId));
    if (p.role === "USER") {
      if (userId !== "" && userId !== p.userId) throw permissionDenied("userId is not the token's user");
      return { appId: p.appId, userId: p.userId, endpointId };
    }
    const registered = await this.endpoints.get(p.appId, endpointId);
    return { appId: p.appId, userId: userId || registered?.userId || p.userId, endpointId };
  }

  async createConference(req: pb.CreateConferenceRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    if (p.role === "USER" && req.conferenceId !== p.conferenceId) {
      throw permissionDenied("a USER token may only open its own conference");
    }
    // A room's type decides its conference's mode; only the app (SERVICE) may choose another.
    if (p.role === "USER" && req.mode !== "") {
      throw permissionDenied("a USER token cannot choose the conference mode");
    }
    // The creating endpoint (to which creation metadata is attributed) is the user's own.
    if (p.role === "USER" && req.creatorEndpoint !== "") {
      await this.endpoints.own(p.appId, p.userId, req.creatorEndpoint);
    }
    const c = await this.conferences.create(p.appId, {
      ...(req.conferenceId ? { conferenceId: req.conferenceId } : {}),
      creator: p.role === "USER" ? p.userId : req.creator || p.userId,
      creatorEndpoint: req.creatorEndpoint,
      ...(req.mode ? { mode: req.mode } : {}),
      metadata: req.metadata,
    });
    return { conference: { id: c.conferenceId, mode: c.mode, version: BigInt(c.version) } };
  }

  async joinConference(req: pb.JoinConferenceRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId, req.userId);
    const user = p.role === "USER";
    await this.endpoints.ensure(
      p.appId,
      actor.userId,
      actor.endpointId,
      this.defaultKeepAliveSeconds,
      user ? MAX_ENDPOINTS_PER_USER_LOGIN : undefined,
    );
    await this.conferences.join(p.appId, req.conferenceId, actor, req.metadata ?? {}, user);
    return {};
  }

  async leaveConference(req: pb.LeaveConferenceRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId);
    await this.conferences.leave(p.appId, req.conferenceId, actor, req.reason, p.role === "USER");
    return {};
  }

  async endConference(req: pb.EndConferenceRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor =
      req.userEndpointId === "" && p.role === "SERVICE"
        ? { appId: p.appId, userId: p.userId, endpointId: "" }
        : await this.actor(p, req.userEndpointId);
    await this.conferences.end(p.appId, req.conferenceId, actor, req.reason, p.role === "USER");
    return {};
  }

  async updateMetadata(req: pb.UpdateMetadataRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId);
    await this.conferences.updateMetadata(
      p.appId,
      req.conferenceId,
      actor,
      { key: req.key, operation: req.operation, value: req.value },
      p.role === "USER",
    );
    return {};
  }

  async updateParticipantMetadata(req: pb.UpdateParticipantMetadataRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId);
    await this.conferences.updateParticipantMetadata(
      p.appId,
      req.conferenceId,
      actor,
      req.newMetadata ?? {},
      p.role === "USER",
    );
    return {};
  }

  async updateStreamMetadata(req: pb.UpdateStreamMetadataRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const streamId = required("streamId.id", req.streamId?.id ?? "");
    const actor = await this.actor(p, req.userEndpointId);
    await this.conferences.updateStreamMetadata(
      p.appId,
      req.conferenceId,
      actor,
      streamId,
      req.newMetadata ?? {},
      p.role === "USER",
    );
    return {};
  }

  async updatePublishedStreamBitrate(req: pb.UpdatePublishedStreamBitrateRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const streamId = required("streamId.id", req.streamId?.id ?? "");
    const actor = await this.actor(p, req.userEndpointId);
    await this.conferences.updateStreamBitrate(
      p.appId,
      req.conferenceId,
      actor,
      streamId,
      req.videoBitrate,
      p.role === "USER",
    );
    // The SFU caps what the publisher may send (a P2P conference's stream has no media here);
    // the change is recorded already, so the SFU's failure is logged, not answered.
    if (req.videoBitrate > 0) {
      const ref = { appId: p.appId, conferenceId: req.conferenceId };
      await this.media?.setStreamBitrate(ref, streamId, req.videoBitrate).catch((err: unknown) => {
        ctx.values.get(kRequestInfo)?.log.warn({ err, streamId }, "could not cap a stream's bitrate on the SFU");
      });
    }
    return {};
  }

  async sendEvent(req: pb.SendEventRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    if (p.role !== "SERVICE") throw permissionDenied("only role SERVICE may send events");
    required("conferenceId", req.conferenceId);
    if (req.event === undefined) throw invalidArgument("event: is required");
    const sent = await this.conferences.sendEvent(p.appId, req.conferenceId, req.event, req.masks, req.qos);
    return { eventsSent: sent };
  }

  /** The SFU for a media command: the conference must run in ROUTER mode and not be over. */
  private async sfu(p: Principal, conferenceId: string): Promise<MediaPlane> {
    const c = await this.conferences.find(p.appId, conferenceId);
    if (c.ended) throw failedPrecondition(`conference ${JSON.stringify(conferenceId)} has ended`);
    if (c.mode !== "ROUTER") {
      throw failedPrecondition("this conference is P2P: media flows between the peers, not through the server");
    }
    if (this.media === undefined || !(await this.media.available())) throw mediaUnavailable();
    return this.media;
  }

  private static sdp<T>(work: () => Promise<T>): Promise<T> {
    return work().catch((e: unknown) => {
      if (e instanceof SdpError) throw invalidArgument(`sdpOffer: ${e.message}`);
      throw e;
    });
  }

  async publishStream(req: pb.PublishStreamRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId);
    if (!STREAM_TYPES.includes(req.conferenceStreamType)) {
      throw invalidArgument("conferenceStreamType: must be CAM, MIC, MIC_AND_CAM or SCREEN");
    }
    if (req.videoBitrate < 0 || req.videoBitrate > 100_000_000)
      throw invalidArgument("videoBitrate: must be 0 to 100000000");
    const streamId = req.streamId?.id ? validateId("streamId.id", req.streamId.id) : Media.newStreamId();
    const media = await this.sfu(p, req.conferenceId);
    const ref = { appId: p.appId, conferenceId: req.conferenceId };
    await this.conferences.requireParticipant(
      p.appId,
      req.conferenceId,
      actor.endpointId,
      p.role === "USER" ? p.userId : undefined,
    );
    const published = await ConferenceServiceImpl.sdp(() =>
      media.publish(ref, actor.endpointId, streamId, req.sdpOffer, req.videoBitrate),
    ).catch((e: unknown) => {
      if (e instanceof StreamConflictError) throw alreadyExists(e.message);
      throw e;
    });
    try {
      await this.conferences.streamPublished(
        p.appId,
        req.conferenceId,
        actor,
        {
          streamId,
          endpointId: actor.endpointId,
          type: req.conferenceStreamType as "CAM",
          metadata: req.metadata ?? {},
          videoBitrate: req.videoBitrate,
          mediaNode: published.node,
        },
        p.role === "USER",
      );
    } catch (e) {
      await media.unpublish(ref, streamId);
      throw e;
    }
    return { sdpAnswer: published.sdpAnswer, streamId: { id: streamId } };
  }

  /** Clients name the viewer's or the publisher's endpoint: the stream is found by its id. */
  async viewStream(req: pb.ViewStreamRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId);
    const streamId = required("streamId.id", req.streamId?.id ?? "");
    const viewerId = req.viewerId ? validateId("viewerId", req.viewerId) : Media.newStreamId();
    const media = await this.sfu(p, req.conferenceId);
    await this.conferences.findStream(p.appId, req.conferenceId, streamId);
    // The named endpoint must have joined (clients name the viewer's or the publisher's). A USER
    // views as one of its own joined endpoints, whichever it names: viewing is for participants.
    await this.conferences.requireParticipant(p.appId, req.conferenceId, actor.endpointId);
    const owner = p.role === "USER" ? p.userId : undefined;
    const viewer =
      owner === undefined
        ? actor.endpointId
        : await this.conferences.viewerEndpoint(p.appId, req.conferenceId, owner, actor.endpointId);
    const answer = await ConferenceServiceImpl.sdp(() =>
      media.view({ appId: p.appId, conferenceId: req.conferenceId }, streamId, viewerId, viewer, owner, req.sdpOffer),
    );
    return { sdpAnswer: answer, viewerId };
  }

  async updateViewLayers(req: pb.UpdateViewLayersRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    await this.actor(p, req.userEndpointId);
    const streamId = required("streamId.id", req.streamId?.id ?? "");
    const viewerId = required("viewerId", req.viewerId);
    const layer = (name: string, value: number) => {
      if (!Number.isInteger(value) || value < 0 || value > 9) throw invalidArgument(`${name}: must be 0 to 9`);
      return value;
    };
    const layers = {
      spatialLayer: layer("spatialLayer", req.spatialLayer),
      ...(req.temporalLayer === undefined ? {} : { temporalLayer: layer("temporalLayer", req.temporalLayer) }),
    };
    const media = await this.sfu(p, req.conferenceId);
    const ref = { appId: p.appId, conferenceId: req.conferenceId };
    const owner = p.role === "USER" ? p.userId : undefined;
    const set = await media.setViewLayers(ref, streamId, viewerId, owner, layers).catch((e: unknown) => {
      if (e instanceof NotSimulcastError) throw failedPrecondition(e.message);
      throw e;
    });
    if (set === undefined) throw notFound(`viewer ${JSON.stringify(viewerId)} of stream ${JSON.stringify(streamId)}`);
    return {
      preferredSpatialLayer: set.preferred.spatialLayer,
      preferredTemporalLayer: set.preferred.temporalLayer ?? 0,
      currentSpatialLayer: set.current?.spatialLayer ?? -1,
    };
  }

  async unpublishStream(req: pb.UnpublishStreamRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    const actor = await this.actor(p, req.userEndpointId);
    const streamId = required("streamId.id", req.streamId?.id ?? "");
    await this.conferences.streamUnpublished(p.appId, req.conferenceId, actor, streamId, p.role === "USER");
    await this.media?.unpublish({ appId: p.appId, conferenceId: req.conferenceId }, streamId);
    return {};
  }

  /** Unknown viewers are tolerated: clients sometimes send their own endpoint id as viewerId. */
  async stopViewStream(req: pb.StopViewStreamRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    await this.actor(p, req.userEndpointId);
    const streamId = required("streamId.id", req.streamId?.id ?? "");
    await this.conferences.find(p.appId, req.conferenceId);
    await this.media?.stopView(
      { appId: p.appId, conferenceId: req.conferenceId },
      streamId,
      req.viewerId,
      p.role === "USER" ? p.userId : undefined,
    );
    return {};
  }

  /** The SFU is ICE-lite: candidates are checked and accepted, the server needs none. */
  private async candidates(
    ctx: HandlerContext,
    conferenceId: string,
    endpointId: string,
    streamId: string,
    list: IceCandidate[],
  ) {
    const p = this.scoped(ctx, conferenceId);
    await this.actor(p, endpointId);
    required("streamId.id", streamId);
    const problem = iceCandidatesProblem(list);
    if (problem !== undefined) throw invalidArgument(`iceCandidates: ${problem}`);
    await this.conferences.find(p.appId, conferenceId);
    return {};
  }

  addPublishStreamIceCandidates(req: pb.AddPublishStreamIceCandidatesRequest, ctx: HandlerContext) {
    return this.candidates(ctx, req.conferenceId, req.userEndpointId, req.streamId?.id ?? "", req.iceCandidates);
  }

  addViewStreamIceCandidates(req: pb.AddViewStreamIceCandidatesRequest, ctx: HandlerContext) {
    return this.candidates(ctx, req.conferenceId, req.userEndpointId, req.streamId?.id ?? "", req.iceCandidates);
  }

  async getConference(req: pb.GetConferenceRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.id);
    return { conference: toConference(await this.conferences.aggregate(p.appId, req.id)) };
  }

  async getConferenceSummary(req: pb.GetConferenceSummaryRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.id);
    return { conference: toSummary(await this.conferences.find(p.appId, req.id)) };
  }

  /** The app's running conferences; a USER token's own conference only. */
  async listConferences(_req: pb.ListConferencesRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    if (p.role === "SERVICE") {
      return { conferences: (await this.conferences.running(p.appId, MAX_LISTED)).map(toSummary) };
    }
    const own = p.conferenceId === undefined ? undefined : await this.conferences.lookup(p.appId, p.conferenceId);
    return { conferences: own === undefined || own.ended ? [] : [toSummary(own)] };
  }

  async getSimpleView(req: pb.GetSimpleViewRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.id);
    return { view: toSimpleView(await this.conferences.aggregate(p.appId, req.id)) };
  }

  async listEvents(req: pb.ListEventsRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.id);
    const events = await this.conferences.waitForEvents(p.appId, req.id, Number(req.v), ctx.signal, p.tenantId);
    // Waiters woken by one commit share one event list: they get one answer object (rendered once).
    let answer = this.eventAnswers.get(events);
    if (answer === undefined) {
      answer = { events };
      this.eventAnswers.set(events, answer);
    }
    return answer;
  }

  async *watchConferenceEvents(req: pb.WatchConferenceEventsRequest, ctx: HandlerContext) {
    const p = this.scoped(ctx, req.conferenceId);
    // The stream lasts no longer than its token, nor past a revocation.
    let ended: string | undefined;
    const stop = new AbortController();
    const unwatch = this.callers.watch(p, (reason) => {
      ended = reason;
      stop.abort();
    });
    try {
      const signal = AbortSignal.any([ctx.signal, stop.signal]);
      for await (const event of this.conferences.watch(
        p.appId,
        req.conferenceId,
        Number(req.sinceVersion),
        signal,
        p.tenantId,
      )) {
        yield { event };
      }
    } finally {
      unwatch();
    }
    if (ended !== undefined) throw unauthenticated(ended);
  }
}
