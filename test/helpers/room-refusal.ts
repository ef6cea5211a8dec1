/** What SpreedRooms answers a join or creation: the refusal's code, or "admitted". */
import { RoomRefusal } from "../../src/spreed/rooms.js";

export function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof RoomRefusal) return e.code;
    throw e;
  }
  return "admitted";
}
