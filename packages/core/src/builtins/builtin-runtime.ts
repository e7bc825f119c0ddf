import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { ReplicaChannel } from '../control/replica-channel.js';

/**
 * The runtime core's own taps see: a replica that attaches over the control protocol has the
 * channel the driver announced to the control server before spawning it. Not part of the
 * plugin-facing {@link ReplicaRuntime}: the protocol is core's business.
 */
export interface BuiltinRuntime extends ReplicaRuntime {
  readonly controlChannel: ReplicaChannel | undefined;
}

export function controlChannelOf(rt: ReplicaRuntime): ReplicaChannel | undefined {
  return (rt as Partial<BuiltinRuntime>).controlChannel;
}
