/** CallService: one-to-one calls of the conference API (`/rtc-api/calls/...`), thin over Calls. */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type * as pb from "../../gen/rtcplane/conference/v1/calls_pb.js";
import type { CallService } from "../../gen/rtcplane/conference/v1/calls_pb.js";
import type { IceCandidate } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { bearerCaller } from "../auth/caller.js";
import type { CallActor, Calls } from "../calls/calls.js";
import { validateId } from "../conferences/conferences.js";
import type { Endpoints } from "../endpoints/endpoints.js";
import { invalidArgument, permissionDenied, unauthenticated } from "../errors.js";
import type { Callers } from "./caller.js";

function candidates(list: readonly IceCandidate[]) {
  return list.map((c) => ({ candidate: c.candidate, sdpMLineIndex: c.sdpMLineIndex, sdpMid: c.sdpMid }));
}

export class CallServiceImpl implements ServiceImpl<typeof CallService> {
  constructor(
    private readonly callers: Callers,
    private readonly calls: Calls,
    private readonly endpoints: Endpoints,
  ) {}

  /**
   * The registered endpoint that acts, and its owner: a USER token acts only as its own
   * user's endpoints, SERVICE as any of its app's. The request's `userId` is informational
   * (the SDK sends the caller's id when answering), the endpoint's owner decides.
   */
  private async actor(ctx: HandlerContext, endpointId: string): Promise<CallActor> {
    const p = bearerCaller(ctx);
    if (endpointId === "") throw invalidArgument("userEndpointId: required");
    validateId("userEndpointId", endpointId);
    const e = await this.endpoints.own(p.appId, p.role === "USER" ? p.userId : undefined, endpointId);
    return { appId: p.appId, userId: e.userId, endpointId };
  }

  async startCall(req: pb.StartCallRequest, ctx: HandlerContext) {
    await this.calls.start(
      await this.actor(ctx, req.userEndpointId),
      req.callId,
      req.sdpOffer,
      req.target,
      req.sipHeaders,
    );
    return {};
  }

  async ringCall(req: pb.RingCallRequest, ctx: HandlerContext) {
    await this.calls.ring(await this.actor(ctx, req.userEndpointId), req.callId);
    return {};
  }

  async answerCall(req: pb.AnswerCallRequest, ctx: HandlerContext) {
    await this.calls.answer(await this.actor(ctx, req.userEndpointId), req.callId, req.sdpAnswer);
    return {};
  }

  async rejectCall(req: pb.RejectCallRequest, ctx: HandlerContext) {
    await this.calls.reject(await this.actor(ctx, req.userEndpointId), req.callId, req.reason);
    return {};
  }

  async cancelCall(req: pb.CancelCallRequest, ctx: HandlerContext) {
    await this.calls.cancel(await this.actor(ctx, req.userEndpointId), req.callId, req.reason);
    return {};
  }

  async hangupCall(req: pb.HangupCallRequest, ctx: HandlerContext) {
    await this.calls.hangup(await this.actor(ctx, req.userEndpointId), req.callId, req.reason);
    return {};
  }

  async addCallIceCandidates(req: pb.AddCallIceCandidatesRequest, ctx: HandlerContext) {
    await this.calls.addCandidates(
      await this.actor(ctx, req.userEndpointId),
      req.callId,
      candidates(req.iceCandidates),
    );
    return {};
  }

  async *watchCallEvents(req: pb.WatchCallEventsRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    if (p.role === "USER" && req.userId !== "" && req.userId !== p.userId) {
      throw permissionDenied("a USER token watches only its own user's calls");
    }
    const userId = p.role === "USER" ? p.userId : req.userId;
    if (userId === "") throw invalidArgument("userId: required");
    // The stream lasts no longer than its token, nor past a revocation.
    let ended: string | undefined;
    const stop = new AbortController();
    const unwatch = this.callers.watch(p, (reason) => {
      ended = reason;
      stop.abort();
    });
    try {
      const signal = AbortSignal.any([ctx.signal, stop.signal]);
      for await (const event of this.calls.watch(p.appId, userId, signal, p.tenantId)) {
        yield { event };
      }
    } finally {
      unwatch();
    }
    if (ended !== undefined) throw unauthenticated(ended);
  }
}
