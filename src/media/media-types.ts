/** What the SFU's callers see of it: conferences, lost streams, view figures and its errors. */
import type { types } from "mediasoup";

/** A conference, by the app it belongs to (conference ids are unique per app only). */
export interface ConferenceRef {
  readonly appId: string;
  readonly conferenceId: string;
}

/** A stream the SFU lost (its worker died, or its publisher went away). */
export interface LostStream extends ConferenceRef {
  readonly endpointId: string;
  readonly streamId: string;
}

/** The worker's estimate of a viewer's downlink (transport-cc), bits per second. */
export interface BandwidthEstimate {
  readonly availableBitrate: number;
}

export interface ViewDescription {
  readonly bwe: BandwidthEstimate | undefined;
  readonly workerPid: number;
  readonly consumers: {
    kind: types.MediaKind;
    type: types.ConsumerType;
    rtpParameters: types.RtpParameters;
    currentLayers: types.ConsumerLayers | undefined;
    stats: types.ConsumerStat[];
  }[];
  readonly transport: types.WebRtcTransportStat | undefined;
  /** Its transport's datagrams are read in batches (MEDIA_VIEWER_READ_BATCH_MS), once connected. */
  readonly readInBatches: boolean;
}

/** What a publisher's transport receives, for operators and tests. */
export interface PublishDescription {
  readonly transport: types.WebRtcTransportStat | undefined;
  /** False: a publisher's packets are read as they come (see ViewDescription). */
  readonly readInBatches: boolean;
}

/** Layers were asked of a stream published with one layer. */
export class NotSimulcastError extends Error {
  constructor(streamId: string) {
    super(`stream ${streamId} is not simulcast: it has a single layer`);
    this.name = "NotSimulcastError";
  }
}

/** A stream id that is published, or being published, already. */
export class StreamConflictError extends Error {
  constructor(streamId: string) {
    super(`stream ${streamId} is already published`);
    this.name = "StreamConflictError";
  }
}
