/**
 * The SFU as the conference service sees it: this node's (Media) on one machine, or the
 * cluster's (ClusterMedia), which runs each command on the node holding the conference's
 * media. Both throw the same errors (SdpError, StreamConflictError, NotSimulcastError).
 */
import type { types } from "mediasoup";
import type { ConferenceRef } from "./media-types.js";

/** What a publish gives back: the SDP answer and the node that holds the stream now. */
export interface Published {
  readonly sdpAnswer: string;
  /** The cluster node whose SFU took the stream; undefined on one machine. */
  readonly node: string | undefined;
}

/** The layers a view prefers and the ones it receives now. */
export interface ViewLayers {
  readonly preferred: types.ConsumerLayers;
  readonly current: types.ConsumerLayers | undefined;
}

export interface MediaPlane {
  /** Whether an SFU can take media now: this node's, or in a cluster any live node's. */
  available(): Promise<boolean>;
  /** Publishes a browser's sendonly offer, capped at `maxIncomingBitrate` (0: no cap). */
  publish(
    ref: ConferenceRef,
    endpointId: string,
    streamId: string,
    sdpOffer: string,
    maxIncomingBitrate: number,
  ): Promise<Published>;
  /** Views a published stream with a browser's recvonly offer; answers with the SDP to apply. */
  view(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    endpointId: string,
    owner: string | undefined,
    sdpOffer: string,
  ): Promise<string>;
  /** Stops views the caller may stop; answers how many. */
  stopView(ref: ConferenceRef, streamId: string, viewerId: string, owner: string | undefined): Promise<number>;
  /** Sets a view's preferred simulcast layers; undefined when there is no such view. */
  setViewLayers(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    owner: string | undefined,
    layers: types.ConsumerLayers,
  ): Promise<ViewLayers | undefined>;
  /** Closes a stream's media (its unpublish is recorded already). */
  unpublish(ref: ConferenceRef, streamId: string): Promise<void>;
  /** Caps what the publisher of a stream may send, bits per second (0: no change). */
  setStreamBitrate(ref: ConferenceRef, streamId: string, bitrate: number): Promise<void>;
}
