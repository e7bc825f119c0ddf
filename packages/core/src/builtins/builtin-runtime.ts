import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { ReplicaHost } from '../pipeline/replica-host.js';

/**
 * The runtime core's own taps see: the host the replica starts on (its launcher and attach), and,
 * for a replica that attaches over the control protocol here, the channel the driver announced to
 * the control server before spawning it. Not part of the plugin-facing {@link ReplicaRuntime}: the
 * protocol and the hosts are core's business.
 */
export interface BuiltinRuntime extends ReplicaRuntime {
  readonly controlChannel: ReplicaChannel | undefined;
  readonly host: ReplicaHost<unknown>;
}

export function controlChannelOf(rt: ReplicaRuntime): ReplicaChannel | undefined {
  return (rt as Partial<BuiltinRuntime>).controlChannel;
}

/** The host of a start the driver runs; undefined when a tap is called outside the driver (the local launcher then). */
export function hostOf(rt: ReplicaRuntime): ReplicaHost<unknown> | undefined {
  return (rt as Partial<BuiltinRuntime>).host;
}
