/** rtcplane.rooms.v1.RoomService: the realtime rooms API on every protocol. */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type CreateRoomRequest,
  type ListRoomsRequest,
  type Room,
  RoomSchema,
  type RoomService,
} from "../../gen/rtcplane/rooms/v1/rooms_pb.js";
import { appCaller } from "../auth/caller.js";
import type { RoomTokens } from "../rooms/room-tokens.js";
import type { RoomRecord, Rooms } from "../rooms/rooms.js";

export class RoomServiceImpl implements ServiceImpl<typeof RoomService> {
  constructor(
    private readonly rooms: Rooms,
    private readonly tokens: RoomTokens,
  ) {}

  /** The app whose secret key (`x-vcs-token`) the interceptor authenticated. */
  private app(ctx: HandlerContext) {
    return appCaller(ctx);
  }

  private static toRoom(r: RoomRecord, token: string): Room {
    return create(RoomSchema, {
      id: r.roomId,
      ...(r.name === null ? {} : { name: r.name }),
      ...(r.description === null ? {} : { description: r.description }),
      creationTime: BigInt(r.creationTimeMs),
      conferenceType: r.conferenceType,
      ...(r.autoUpgradeParticipantCount === null ? {} : { autoUpgradeParticipantCount: r.autoUpgradeParticipantCount }),
      modificationTime: BigInt(r.modificationTimeMs),
      maxParticipants: r.maxParticipants,
      roomTokenTtlSeconds: r.roomTokenTtlSeconds,
      roomTtlSeconds: r.roomTtlSeconds,
      endpointTtlSeconds: r.endpointTtlSeconds,
      token,
    });
  }

  /** The room with its current token. */
  private withToken(r: RoomRecord, credentialGen: number): Room {
    return RoomServiceImpl.toRoom(r, this.tokens.current(r.roomId, r.appId, r.roomTokenTtlSeconds, credentialGen));
  }

  async createRoom(req: CreateRoomRequest, ctx: HandlerContext) {
    const app = this.app(ctx);
    const room = await this.rooms.create(app.appId, {
      name: req.name,
      description: req.description,
      conferenceType: req.conferenceType,
      autoUpgradeParticipantCount: req.autoUpgradeParticipantCount,
    });
    return { room: this.withToken(room, app.credentialGen) };
  }

  async getRoom(req: { id: string }, ctx: HandlerContext) {
    const app = this.app(ctx);
    return { room: this.withToken(await this.rooms.use(app.appId, req.id), app.credentialGen) };
  }

  async listRooms(req: ListRoomsRequest, ctx: HandlerContext) {
    const app = this.app(ctx);
    const page = await this.rooms.list(app.appId, req.numberOfRecords, req.token);
    return {
      data: page.rooms.map((r) => this.withToken(r, app.credentialGen)),
      ...(page.nextToken === undefined ? {} : { token: page.nextToken }),
    };
  }

  async deleteRoom(req: { id: string }, ctx: HandlerContext) {
    const app = this.app(ctx);
    return { room: this.withToken(await this.rooms.delete(app.appId, req.id), app.credentialGen) };
  }
}
