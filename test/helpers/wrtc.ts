/** libwebrtc in Node (@roamhq/wrtc), typed for the parts tests and benches use. */
import wrtc from "@roamhq/wrtc";

export interface I420Frame {
  width: number;
  height: number;
  data: Uint8Array;
}

export const { RTCPeerConnection, nonstandard } = wrtc as unknown as {
  RTCPeerConnection: typeof globalThis.RTCPeerConnection;
  nonstandard: {
    RTCVideoSource: new () => { createTrack(): MediaStreamTrack; onFrame(frame: I420Frame): void };
    RTCVideoSink: new (
      track: MediaStreamTrack,
    ) => { onframe: ((e: { frame: I420Frame }) => void) | null; stop(): void };
    RTCAudioSource: new () => {
      createTrack(): MediaStreamTrack;
      onData(data: {
        samples: Int16Array;
        sampleRate: number;
        bitsPerSample: number;
        channelCount: number;
        numberOfFrames: number;
      }): void;
    };
  };
};
