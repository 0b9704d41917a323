/**
 * What the inbox commands need from an inbox: on a VM its own daemon's, on
 * the laptop the flagship's (over the transport). Both are RPC; commands
 * are written once against this interface and tested against a fake.
 */
import type { CallOptions } from "../rpc/stream.ts";
import type { Envelope, Message, SentRecord, WireRecord } from "./types.ts";

export type InboxStatus = "unread" | "running" | "pending" | "done" | "error";
export const INBOX_STATUSES: readonly InboxStatus[] = [
  "unread",
  "running",
  "pending",
  "done",
  "error",
];

export interface QueuedView {
  id: string;
  recipient: string;
  kind: string;
  command: string | null;
  created_at: string;
}

export interface InboxListing {
  messages: WireRecord<Message>[];
  queued: QueuedView[];
}

export interface InboxApi {
  /** This machine's address, e.g. captain@alpha. */
  identity(): Promise<string>;
  send(
    recipient: string,
    command: string,
    timeoutS: number | null,
  ): Promise<Envelope>;
  /** The result of a message this machine sent, once there is one. */
  wait(id: string): Promise<WireRecord<SentRecord>>;
  list(o: { status?: InboxStatus; limit?: number }): Promise<InboxListing>;
  show(id: string): Promise<{ kind: string; record: WireRecord<Message> }>;
  /** Moves a message by hand (`inbox read`, `done`, `error`). */
  set(
    id: string,
    status: "pending" | "done" | "error",
    error?: string,
  ): Promise<WireRecord<Message> | null>;
  delete(id: string): Promise<{ deleted: string }>;
}

export type RpcCall = <T>(
  op: string,
  args?: Record<string, unknown>,
  opts?: CallOptions,
) => Promise<T>;

/** The inbox behind an RPC call (the daemon's socket, or `_rpc` over a transport). */
export function rpcInbox(call: RpcCall): InboxApi {
  return {
    identity: () => call<string>("inbox.identity"),
    send: (recipient, command, timeoutS) =>
      call<Envelope>("inbox.send", { recipient, command, timeout_s: timeoutS }),
    wait: (id) => call<WireRecord<SentRecord>>("inbox.wait", { id }),
    list: (o) => call<InboxListing>("inbox.list", o),
    show: (id) => call("inbox.show", { id }),
    set: (id, status, error) =>
      call(
        "inbox.set",
        error === undefined ? { id, status } : {
          id,
          status,
          error,
        },
      ),
    delete: (id) => call("inbox.delete", { id }),
  };
}
