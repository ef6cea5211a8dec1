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

/** A camera whose frames change (the luma steps every frame) so a viewer can tell they move. */
export function movingCamera(width = 320, height = 240): { track: MediaStreamTrack; stop(): void } {
  const source = new nonstandard.RTCVideoSource();
  let frameNo = 0;
  const timer = setInterval(() => {
    const data = new Uint8Array(width * height * 1.5);
    data.fill((frameNo++ * 9) % 200, 0, width * height);
    data.fill(128, width * height);
    source.onFrame({ width, height, data });
  }, 33);
  return { track: source.createTrack(), stop: () => clearInterval(timer) };
}

/**
 * A camera with texture and motion: a fixed noise pattern panning across the frame, which an
 * encoder cannot squeeze to nothing as it does the flat frames of movingCamera (a 960x540
 * layer takes ~1.1 Mbit/s at 30 fps, 480x270 ~360 kbit/s, 240x135 ~140 kbit/s). The first
 * luma byte still steps every frame.
 */
export function texturedCamera(width = 960, height = 540, fps = 30): { track: MediaStreamTrack; stop(): void } {
  const source = new nonstandard.RTCVideoSource();
  // Random 8x8 tiles: noise per pixel defeats the encoder (its top layer fell to 2 fps).
  const tilesPerRow = (width * 2) / 8 + 1;
  const tiles = new Uint8Array(tilesPerRow * (height / 8 + 1));
  let seed = 7;
  for (let i = 0; i < tiles.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    tiles[i] = 48 + ((seed >>> 16) % 160);
  }
  const noise = new Uint8Array(width * 2 * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width * 2; x++) noise[y * width * 2 + x] = tiles[(y >> 3) * tilesPerRow + (x >> 3)] ?? 0;
  let frameNo = 0;
  const timer = setInterval(() => {
    const data = new Uint8Array(width * height * 1.5);
    const shift = (frameNo * 4) % width;
    for (let y = 0; y < height; y++)
      data.set(noise.subarray(y * 2 * width + shift, y * 2 * width + shift + width), y * width);
    data[0] = (frameNo++ * 9) % 200;
    data.fill(128, width * height);
    source.onFrame({ width, height, data });
  }, 1000 / fps);
  return { track: source.createTrack(), stop: () => clearInterval(timer) };
}

/**
 * Sets a fresh offer as `pc`'s local description and returns its SDP — read from the offer,
 * never from `pc.localDescription` while candidates are gathered: @roamhq/wrtc serialises
 * that on the JavaScript thread while libwebrtc's signaling thread adds each gathered
 * candidate to it, a race that killed test processes (SIGSEGV in webrtc::SdpSerialize under
 * RTCPeerConnection::GetLocalDescription: a CI core's backtrace, scripts/test.sh). The SFU is
 * ICE-lite and needs no candidates in the offer; `munge` edits the offer before it is set.
 */
export async function setLocalOffer(
  pc: RTCPeerConnection,
  munge: (sdp: string) => string = (sdp) => sdp,
): Promise<string> {
  const sdp = munge((await pc.createOffer()).sdp ?? "");
  await pc.setLocalDescription({ type: "offer", sdp });
  return sdp;
}

/** The first luma byte of every video frame `pc` decodes, appended as they come. */
export function decodedFrames(pc: RTCPeerConnection): number[] {
  const frames: number[] = [];
  pc.ontrack = (e) => {
    if (e.track.kind !== "video") return;
    const sink = new nonstandard.RTCVideoSink(e.track);
    sink.onframe = ({ frame }) => frames.push(frame.data[0] ?? 0);
  };
  return frames;
}

/**
 * `pc`'s UDP host candidates on 127.0.0.1, as the SDKs send them, once gathering completes:
 * test traffic stays on loopback.
 */
export function loopbackCandidates(
  pc: RTCPeerConnection,
): Promise<{ candidate: string; sdpMLineIndex: number | null; sdpMid: string | null }[]> {
  const list: { candidate: string; sdpMLineIndex: number | null; sdpMid: string | null }[] = [];
  return new Promise((resolve) => {
    pc.onicecandidate = (e) => {
      if (e.candidate === null) resolve(list);
      else if (/ 127\.0\.0\.1 \d+ typ host/.test(e.candidate.candidate) && / udp /i.test(e.candidate.candidate)) {
        list.push({
          candidate: e.candidate.candidate,
          sdpMLineIndex: e.candidate.sdpMLineIndex,
          sdpMid: e.candidate.sdpMid,
        });
      }
    };
  });
}

/** `pc`'s stats of one type ("inbound-rtp", "candidate-pair", …), as plain records. */
export async function statsOfType(pc: RTCPeerConnection, type: string): Promise<Record<string, number & string>[]> {
  const out: Record<string, number & string>[] = [];
  (await pc.getStats()).forEach((s: Record<string, number & string>) => {
    if (s.type === type) out.push(s);
  });
  return out;
}
