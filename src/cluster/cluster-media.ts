/**
 * The cluster's SFU as one (a MediaPlane): each media command runs where its conference's
 * media lives. A first publish places the conference on the least loaded live node
 * (MediaNodes); commands for a conference held here run on this node's Media, the others
 * are forwarded to the holder over the internal media service (MediaNodeClients), so SDP
 * answers carry the holder's candidates and browsers connect straight to it.
 *
 * It also keeps this node in the registry (a heartbeat with its load) and, once per round
 * across the cluster (a lease), unpublishes the streams of nodes that stopped beating: their
 * viewers get ConferenceStreamUnpublishedEvent, their publishers turn SICK.
 */
import type { types } from "mediasoup";
import type { ServerKey } from "../auth/server-key.js";
import type { PeriodicJob } from "../background.js";
import type { PlacedStream } from "../conferences/conference-repository.js";
import type { Config } from "../config.js";
import { DomainError } from "../errors.js";
import type { Media } from "../media/media.js";
import type { MediaPlane, Published, ViewLayers } from "../media/media-plane.js";
import type { ConferenceRef } from "../media/media-types.js";
import { SdpError } from "../media/sdp-bridge.js";
import type { Logger } from "../observability/log.js";
import type { Store } from "../storage/store.js";
import { MediaNodeClients } from "./media-node-client.js";
import { type MediaNode, MediaNodes, type NodeAnnouncement } from "./media-nodes.js";

/** What the reaper asks of the conferences (see Conferences.streamsNotOn / streamLost). */
export interface StreamRecords {
  streamsNotOn(liveNodes: readonly string[], limit: number): Promise<PlacedStream[]>;
  streamLost(
    ref: ConferenceRef,
    endpointId: string,
    streamId: string,
    publisherSick: boolean,
    onNode?: string,
  ): Promise<void>;
}

/** Loopback, RFC 1918 and unique-local addresses (and names, which the operator resolves). */
function isPrivateHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  if (!/^[0-9.]+$/.test(h) && !h.includes(":")) return true;
  return /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1$|f[cd][0-9a-f]{2}:)/i.test(h);
}

/** Streams unpublished per reaper round (the next round takes the rest). */
const REAP_BATCH = 500;

export class ClusterMedia implements MediaPlane {
  constructor(
    private readonly nodes: MediaNodes,
    private readonly clients: MediaNodeClients,
    /** This node's SFU; undefined when it runs none (it forwards everything). */
    private readonly local: Media | undefined,
    private readonly store: Store,
    /** Where the reaper finds and records lost streams (the conferences). */
    private readonly streams: StreamRecords,
    private readonly log: Logger,
    private readonly config: Config,
  ) {}

  /**
   * The credential nodes of a cluster call each other's internal services with (derived from
   * CLUSTER_SECRET); undefined on one machine.
   */
  static credential(config: Config, serverKey: ServerKey): string | undefined {
    return config.clusterSecret === undefined ? undefined : serverKey.derive("cluster.media-rpc").toString("base64url");
  }

  /** The cluster's SFU on a shared (PostgreSQL) store; undefined on one machine. */
  static forCluster(
    store: Store,
    streams: StreamRecords,
    config: Config,
    serverKey: ServerKey,
    local: Media | undefined,
    log: Logger,
  ): ClusterMedia | undefined {
    const credential = ClusterMedia.credential(config, serverKey);
    if (store.kind !== "postgres" || credential === undefined) return undefined;
    const clients = new MediaNodeClients(credential, config.nodes.forwardTimeoutMs, log);
    const nodes = new MediaNodes(store, config.nodes.deadAfterMs);
    return new ClusterMedia(nodes, clients, local, store, streams, log, config);
  }

  /**
   * Joins the registry once listening on `port`: other nodes call NODE_URL, by default this
   * node's ANNOUNCED_IP (else its listen address, else loopback) on the same port.
   */
  async start(port: number, tls: boolean): Promise<void> {
    const config = this.config;
    const specific = config.host !== "0.0.0.0" && config.host !== "::" ? config.host : undefined;
    const host = config.announcedIp ?? specific ?? "127.0.0.1";
    const rpcUrl = config.nodes.url ?? `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
    if (rpcUrl.startsWith("http://") && !isPrivateHost(new URL(rpcUrl).hostname)) {
      this.log.warn(
        { rpcUrl },
        "NODE_URL is plaintext to a public address: the cluster credential would cross it unencrypted; use a private address or https",
      );
    }
    await this.register({ rpcUrl, mediaIp: config.announcedIp ?? config.media.listenIp });
    this.log.info({ nodeId: this.nodeId, rpcUrl, workers: this.local?.workerPids().length ?? 0 }, "media node joined");
  }

  /** The heartbeat and the reaper, every NODE_HEARTBEAT_MS. */
  jobs(): PeriodicJob[] {
    const everyMs = this.config.nodes.heartbeatMs;
    return [
      { name: "media node heartbeat", everyMs, run: () => this.heartbeat() },
      { name: "dead media nodes", everyMs, run: () => this.reap() },
    ];
  }

  get nodeId(): string {
    return this.nodes.nodeId;
  }

  private load() {
    let transports = 0;
    let consumers = 0;
    for (const w of this.local?.census().workers.values() ?? []) {
      transports += w.transports;
      consumers += w.consumers;
    }
    return { transports, consumers };
  }

  /** Joins the registry: from now on conferences may be placed here. */
  async register(self: Omit<NodeAnnouncement, "workers">): Promise<void> {
    await this.nodes.register({ ...self, workers: this.local?.workerPids().length ?? 0 }, this.load());
    this.announcement = self;
  }

  private announcement: Omit<NodeAnnouncement, "workers"> | undefined;

  /**
   * Says this node lives. When it was silent too long (a stall, a pause), the others count it
   * dead and unpublish its streams: the media it still holds is closed, and it rejoins under
   * a new id (its old id's streams are all gone, none of its new ones can be taken for them).
   */
  async heartbeat(): Promise<void> {
    if (this.announcement === undefined) return;
    if (await this.nodes.heartbeat(this.load())) return;
    const announcement = this.announcement;
    if (announcement === undefined) return; // left meanwhile (shutdown)
    const was = this.nodeId;
    this.local?.closeAll();
    this.nodes.renew();
    this.log.warn(
      { was, nodeId: this.nodeId },
      "this node was silent too long and counted dead: media closed, rejoined",
    );
    await this.register(announcement);
  }

  /** Unpublishes the streams of dead nodes, then forgets those nodes (one node per round: a lease). */
  async reap(): Promise<void> {
    await this.store.withLease("media.reaper", async () => {
      // The live nodes are read again after the streams: a node that joined (or rejoined under
      // a new id) after the first read registered before recording its streams, so it is live
      // in the second read and its streams are not taken for lost ones.
      const candidates = await this.streams.streamsNotOn(await this.nodes.liveIds(), REAP_BATCH);
      const live = new Set(await this.nodes.liveIds());
      const lost = candidates.filter((s) => !live.has(s.mediaNode));
      for (const s of lost) {
        await this.streams.streamLost(s, s.endpointId, s.streamId, true, s.mediaNode);
      }
      if (lost.length > 0) {
        const nodes = [...new Set(lost.map((s) => s.mediaNode))];
        this.log.warn({ nodes, streams: lost.length }, "streams of dead media nodes unpublished");
      }
      if (candidates.length < REAP_BATCH)
        for (const nodeId of await this.nodes.deadIds()) await this.nodes.forget(nodeId);
    });
  }

  /** Leaves the registry (shutdown): the others unpublish what this node held at once. */
  async leave(): Promise<void> {
    this.announcement = undefined;
    try {
      await this.nodes.leave();
    } finally {
      this.clients.close();
    }
  }

  /** A conference ended: its placement is forgotten (by the node it is on: every node hears the end). */
  async ended(ref: ConferenceRef): Promise<void> {
    if (this.local !== undefined) await this.nodes.release(ref.appId, ref.conferenceId);
  }

  private isLocal(node: MediaNode): boolean {
    return node.nodeId === this.nodes.nodeId;
  }

  private sfu(): Media {
    if (this.local === undefined) {
      // Placement only chooses nodes with workers: a conference placed here lost them since.
      throw new DomainError("unavailable", "this node's SFU is gone; retry shortly");
    }
    return this.local;
  }

  /** The live node holding the conference's media; undefined when none ever did. */
  private async holder(ref: ConferenceRef): Promise<MediaNode | undefined> {
    const placement = await this.nodes.placement(ref.appId, ref.conferenceId);
    if (placement === undefined) return undefined;
    if (!placement.alive) {
      throw new DomainError(
        "unavailable",
        "the media node of this conference stopped answering: its streams are being unpublished; publish again",
      );
    }
    return placement;
  }

  /** This node's SFU, else whether a live node runs one (asked at most once per heartbeat). */
  async available(): Promise<boolean> {
    if (this.local !== undefined) return true;
    const now = Date.now();
    if (this.sfusAsked === undefined || now - this.sfusAsked.at > this.config.nodes.heartbeatMs) {
      this.sfusAsked = { at: now, any: (await this.nodes.liveSfus()) > 0 };
    }
    return this.sfusAsked.any;
  }

  private sfusAsked: { at: number; any: boolean } | undefined;

  async publish(
    ref: ConferenceRef,
    endpointId: string,
    streamId: string,
    sdpOffer: string,
    maxIncomingBitrate: number,
  ): Promise<Published> {
    const node = await this.nodes.place(ref.appId, ref.conferenceId);
    if (this.isLocal(node)) {
      const { sdpAnswer } = await this.sfu().publish(ref, endpointId, streamId, sdpOffer, maxIncomingBitrate);
      return { sdpAnswer, node: node.nodeId };
    }
    const answer = await this.clients.on(node, streamId, (c) =>
      c.publish({ conference: ref, endpointId, streamId, sdpOffer, maxIncomingBitrate, targetNodeId: node.nodeId }),
    );
    return { sdpAnswer: answer.sdpAnswer, node: node.nodeId };
  }

  async view(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    endpointId: string,
    owner: string | undefined,
    sdpOffer: string,
  ): Promise<string> {
    const node = await this.holder(ref);
    if (node === undefined) throw new SdpError(`stream ${streamId} is not published`);
    if (this.isLocal(node)) return this.sfu().view(ref, streamId, viewerId, endpointId, owner, sdpOffer);
    const answer = await this.clients.on(node, streamId, (c) =>
      c.view({ conference: ref, streamId, viewerId, endpointId, owner, sdpOffer, targetNodeId: node.nodeId }),
    );
    return answer.sdpAnswer;
  }

  /** Views on a node that stopped answering are gone with it: none to stop. */
  async stopView(ref: ConferenceRef, streamId: string, viewerId: string, owner: string | undefined): Promise<number> {
    const node = await this.nodes.placement(ref.appId, ref.conferenceId);
    if (node === undefined || !node.alive) return 0;
    if (this.isLocal(node)) return this.sfu().stopView(ref, streamId, viewerId, owner);
    const answer = await this.clients.on(node, streamId, (c) =>
      c.stopView({ conference: ref, streamId, viewerId, owner, targetNodeId: node.nodeId }),
    );
    return answer.stopped;
  }

  async setViewLayers(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    owner: string | undefined,
    layers: types.ConsumerLayers,
  ): Promise<ViewLayers | undefined> {
    const node = await this.holder(ref);
    if (node === undefined) return undefined;
    if (this.isLocal(node)) return this.sfu().setViewLayers(ref, streamId, viewerId, owner, layers);
    const a = await this.clients.on(
      node,
      streamId,
      (c) =>
        c.setViewLayers({
          conference: ref,
          streamId,
          viewerId,
          owner,
          spatialLayer: layers.spatialLayer,
          temporalLayer: layers.temporalLayer,
          targetNodeId: node.nodeId,
        }),
      true,
    );
    if (!a.found) return undefined;
    const layer = (spatialLayer: number, temporalLayer: number | undefined) =>
      temporalLayer === undefined ? { spatialLayer } : { spatialLayer, temporalLayer };
    return {
      preferred: layer(a.preferredSpatialLayer, a.preferredTemporalLayer),
      current: a.currentSpatialLayer === undefined ? undefined : layer(a.currentSpatialLayer, a.currentTemporalLayer),
    };
  }

  /** The unpublish is recorded already: a holder that does not answer is logged, not reported. */
  async unpublish(ref: ConferenceRef, streamId: string): Promise<void> {
    try {
      const node = await this.holder(ref);
      if (node === undefined) return;
      if (this.isLocal(node)) await this.sfu().unpublish(ref, streamId);
      else {
        await this.clients.on(node, streamId, (c) =>
          c.unpublish({ conference: ref, streamId, targetNodeId: node.nodeId }),
        );
      }
    } catch (err) {
      this.log.warn({ err, ...ref, streamId }, "could not close an unpublished stream's media");
    }
  }

  async setStreamBitrate(ref: ConferenceRef, streamId: string, bitrate: number): Promise<void> {
    const node = await this.holder(ref);
    if (node === undefined) return;
    if (this.isLocal(node)) return this.sfu().setStreamBitrate(ref, streamId, bitrate);
    await this.clients.on(node, streamId, (c) =>
      c.setStreamBitrate({ conference: ref, streamId, bitrate, targetNodeId: node.nodeId }),
    );
  }
}
