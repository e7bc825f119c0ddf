/**
 * Chunks of one request in flight on one streaming edge, each way (docs/protocol.md "Flow
 * control"): input chunks sent to a replica and not yet taken by its handler, output chunks a
 * replica sent and the router has not yet passed on. Small enough that 64 requests of a replica
 * hold a few thousand chunks at most; large enough that a token-per-chunk producer never waits on
 * a round trip (acks and credits go back every quarter window).
 */
export const STREAM_WINDOW = 16;
