/**
 * The one error catalogue of omnistage. Every failure a user can see carries a stable `code`
 * from {@link ERROR_CATALOGUE}, an exit code for the CLI (2 = config or usage, 1 = runtime), an
 * optional YAML location, structured context and a hint that says how to fix it.
 */
import { environmentFault } from './environment-fault.js';

/** A position in a YAML (or JSON) source: 1-based line and column. */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

/**
 * What the catalogue says about one error code: the CLI exit code, when it happens (`summary`, a
 * sentence that completes "This error means ...") and how to fix it. docs/errors.md is generated
 * from these entries (`npm run docs:errors`) and a test keeps the two in step.
 */
export interface ErrorEntry {
  exitCode: 1 | 2;
  /**
   * What `omnistage serve` answers when this error ends a request. 4xx only for what the client can
   * change; configuration and plugin faults are the server's (500); a replica or engine that failed
   * is the upstream's (502); a pipeline that cannot take the request now is 503.
   */
  httpStatus: HttpStatus;
  summary: string;
  fix: string;
}

/** The HTTP statuses the catalogue gives its codes. */
export type HttpStatus = 400 | 401 | 404 | 413 | 415 | 429 | 500 | 502 | 503 | 504;

/** Stable error codes, with the CLI exit code each one maps to, when it happens and how to fix it. */
export const ERROR_CATALOGUE = {
  OMNI_USAGE: {
    exitCode: 2,
    httpStatus: 400,
    summary: 'the command line is not valid',
    fix: 'Run `omnistage help <command>` and correct the flag or argument the message names.',
  },
  OMNI_CONFIG_NOT_FOUND: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a configuration file could not be read',
    fix: 'Check the path (relative paths resolve against the current directory, base_config paths against the file that names them) and the file permissions.',
  },
  OMNI_CONFIG_PARSE: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a configuration file is not valid YAML, or is too large or too deeply nested to be a pipeline file',
    fix: 'Fix the YAML at the reported line and column; keep files under the documented size, alias and nesting limits.',
  },
  OMNI_CONFIG_INVALID: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a configuration value is not valid (wrong type, out of range, or contradicting another value)',
    fix: 'Change the value at the reported location to what the message asks for.',
  },
  OMNI_CONFIG_UNKNOWN_KEY: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a configuration key is not known',
    fix: 'Correct the spelling (the hint suggests the closest known key) or remove the key.',
  },
  OMNI_CONFIG_BASE_CYCLE: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'base_config files include each other',
    fix: 'Remove one base_config link so that the chain of files ends.',
  },
  OMNI_CONFIG_OVERRIDE_INVALID: {
    exitCode: 2,
    httpStatus: 500,
    summary: '--stage-overrides is not valid (syntax, unknown stage id, topology key or bad value)',
    fix: 'Pass a map from stage id to keys, e.g. --stage-overrides \'{"1": {"devices": "2"}}\', and fix the reported position.',
  },
  OMNI_CONFIG_CONNECTOR: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a connector reference or edge is not valid',
    fix: 'Define every connector a stage names under `connectors:` and make edges and engine_input_source agree.',
  },
  OMNI_CONFIG_PIPELINE_UNKNOWN: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'no plugin registers the named pipeline',
    fix: 'Name a registered pipeline in `pipeline:` or --pipeline (the error lists them), or load the plugin that defines it.',
  },
  OMNI_CONFIG_PIPELINE_UNRESOLVED: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'no pipeline gives the deploy file its topology',
    fix: 'Add `pipeline: NAME`, pass --pipeline NAME or --model with a checkpoint directory, or spell out stage_type, engine_input_source and final_output per stage.',
  },
  OMNI_CONFIG_TOPOLOGY: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'stage inputs form a cycle, so no request reaches those stages',
    fix: 'Remove one engine_input_source of the cycle so every stage is fed from an entry stage (one with no inputs).',
  },
  OMNI_CONFIG_STRATEGY: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a strategy file (--strategy-config) is not valid',
    fix: 'Map each model_stage to a list of `{axis: tp|dp|pp|ep|stage_replica, size: N}` entries that agree with the deploy file.',
  },
  OMNI_STAGE_TYPE_UNKNOWN: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'no plugin handles this stage type',
    fix: 'Use a stage_type of a loaded plugin (llm, diffusion) or load the plugin that defines it with --plugin.',
  },
  OMNI_ENGINE_UNKNOWN: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'no plugin provides this engine',
    fix: 'Use an engine a loaded plugin provides (e.g. reference, vllm) or load the plugin that defines it.',
  },
  OMNI_PLAN_DEVICES: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'devices cannot be assigned to replicas',
    fix: 'Give the stage as many devices as its replicas need (devices × num_replicas), or lower the parallel sizes.',
  },
  OMNI_PLAN_OVERCOMMIT: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a device is over-committed (the stages on it ask for more than its memory)',
    fix: 'Lower gpu_memory_utilization of the stages sharing the device, move one to another device, or pass --allow-overcommit.',
  },
  OMNI_PLUGIN_INVALID: {
    exitCode: 2,
    httpStatus: 500,
    summary: 'a plugin could not be loaded or is not valid',
    fix: 'Check the --plugin path or package name and that it exports a plugin factory (see docs/plugins.md).',
  },
  OMNI_PLUGIN_FAILED: {
    exitCode: 1,
    httpStatus: 500,
    summary:
      'plugin code threw (a hook, a stage-type or engine callback, an input processor or an event listener); exit 2 while planning, 1 at runtime',
    fix: 'Read the plugin and callback named in the message; fix the plugin or report it to its author.',
  },
  OMNI_LOCK_TIMEOUT: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'a device lock was not acquired in time, or the lock directory cannot be used',
    fix: 'Wait for or stop the holder the message names; remove a foreign object it names; or use a lock directory of your own (--lock-dir).',
  },
  OMNI_LOCK_UNSAFE: {
    exitCode: 1,
    httpStatus: 503,
    summary:
      'the lock directory, or an object in it, is not what omnistage creates and could be controlled by another user',
    fix: 'Remove the object the message names (as its owner or root), or use a lock directory of your own (--lock-dir).',
  },
  OMNI_LOCK_COMPROMISED: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'a held device lock was lost',
    fix: 'Do not remove lock directories of running pipelines; keep the event loop from blocking longer than the lock staleness.',
  },
  OMNI_SPAWN_FAILED: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'a replica process could not be started',
    fix: 'Check that the worker command exists and is executable (the message names it).',
  },
  OMNI_PORT_IN_USE: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'a port a replica must bind is taken by another program',
    fix: 'Stop the program on that port or choose another port.',
  },
  OMNI_WORKER_EXITED: {
    exitCode: 1,
    httpStatus: 502,
    summary: 'a replica process exited',
    fix: "Read the replica's last output lines in the message; fix its configuration or environment.",
  },
  OMNI_WORKER_UNRESPONSIVE: {
    exitCode: 1,
    httpStatus: 502,
    summary: 'a serving replica stopped answering (stopped process, missing heartbeats, failed readiness checks)',
    fix: "Read the replica's log; if it is only slow, raise runtime.heartbeat_timeout_s or runtime.readiness_failures.",
  },
  OMNI_ATTACH_TIMEOUT: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'a replica did not attach in time',
    fix: 'Raise stage_init_timeout if the model loads slowly, or check why the replica never said hello.',
  },
  OMNI_CLUSTER: {
    exitCode: 1,
    httpStatus: 503,
    summary:
      'a head or agent could not use the cluster: etcd unreachable, no head for the run, the head went away, or the pipeline files of head and agent differ',
    fix: 'Check the --etcd URL and that the head runs; give head and agents the same pipeline file (the message names the first difference) and the same --cluster-secret-file.',
  },
  OMNI_TLS: {
    exitCode: 2,
    httpStatus: 500,
    summary:
      'a --tls-cert, --tls-key or --tls-ca file is missing, unreadable, not PEM, expired, not for this use, or does not match its key',
    fix: 'Read which flag and file the message names; make the certificates as docs/scale-out.md shows (openssl), keep the key mode 0600.',
  },
  OMNI_INIT_TIMEOUT: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'the pipeline did not come up in time',
    fix: 'Raise --init-timeout, or look at the stage the message names.',
  },
  OMNI_PROTOCOL: {
    exitCode: 1,
    httpStatus: 502,
    summary: 'a replica broke the control protocol',
    fix: 'Use the worker SDK of the same omnistage version; the message names the message that was refused.',
  },
  OMNI_CANCELLED: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'the operation was cancelled',
    fix: 'Nothing to fix when you cancelled it; otherwise look for the failure that cancelled it.',
  },
  OMNI_REQUEST_FAILED: {
    exitCode: 1,
    httpStatus: 502,
    summary: 'a request could not be completed',
    fix: 'Check the request field the message names, or the replica that failed it.',
  },
  OMNI_PAYLOAD_NO_SPACE: {
    exitCode: 1,
    summary:
      'the payload directory (a tmpfs such as /dev/shm) is full: a payload could not be stored, and the request that produced it failed',
    fix: "Give the payload directory more room (docker: --shm-size), lower `pool_bytes` in the stages' connector_config, or point OMNISTAGE_PAYLOAD_DIR at a larger file system.",
    httpStatus: 503,
  },
  OMNI_STAGE_UNAVAILABLE: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'a stage has no live replica to take a request (its replicas died and none came back in time)',
    fix: 'Set runtime.restart: {policy: on-failure} or num_replicas > 1 on the stage the message names; read why its replicas died in the log.',
  },
  OMNI_PAYLOAD_FETCH: {
    exitCode: 1,
    httpStatus: 502,
    summary:
      'a payload stored on another host could not be fetched or freed over the data plane (host gone, payload released, wrong token, TLS refused, deadline passed)',
    fix: 'Check that the producing host is up and that the head and agents share the cluster secret and TLS files; the message names the payload, the host and what the server said.',
  },
  OMNI_PAYLOAD_TOO_LARGE: {
    exitCode: 1,
    httpStatus: 502,
    summary: 'a payload is larger than the configured maximum a replica may fetch from another host',
    fix: "Raise the head's --max-payload-bytes, or keep the producing and consuming stages on one host.",
  },
  OMNI_KV_TRANSFER_MISSING: {
    exitCode: 1,
    httpStatus: 502,
    summary:
      'a vLLM prefill replica answered without kv_transfer_params, so its KV cache cannot reach the decode replica',
    fix: 'Run the prefill replica with --kv-transfer-config naming NixlConnector (omnistage derives it from the stage connectors) on vLLM 0.9 or later.',
  },
  OMNI_ENVIRONMENT: {
    exitCode: 1,
    httpStatus: 503,
    summary:
      'the host refused a resource omnistage needs: a full filesystem (ENOSPC, EDQUOT), too many open files (EMFILE, ENFILE), no permission (EACCES, EPERM), a read-only filesystem (EROFS), no memory (ENOMEM), or a path omnistage must create is taken or too long',
    fix: 'Free or grant the resource the message names (its path and the system error): free space, raise `ulimit -n`, fix the permissions, or point omnistage at another directory.',
  },
  OMNI_INTERNAL: {
    exitCode: 1,
    httpStatus: 500,
    summary: 'an internal error (a bug in omnistage)',
    fix: 'Report it with the command line and the configuration that caused it.',
  },
  // `omnistage serve`: the HTTP answer's `error.code`; the status is in docs/serving.md.
  OMNI_HTTP_INVALID_REQUEST: {
    exitCode: 1,
    httpStatus: 400,
    summary: 'an HTTP request is not valid (body, field, route or model)',
    fix: 'Correct the request field the message names (see docs/serving.md).',
  },
  OMNI_HTTP_UNAUTHORIZED: {
    exitCode: 1,
    httpStatus: 401,
    summary: 'an HTTP request lacks the right API key',
    fix: 'Send the key given with --api-key as `Authorization: Bearer <key>`.',
  },
  OMNI_HTTP_OVERLOADED: {
    exitCode: 1,
    httpStatus: 429,
    summary: 'the server has --max-inflight requests in flight',
    fix: 'Retry later, or raise --max-inflight if the pipeline can take more.',
  },
  OMNI_HTTP_UNAVAILABLE: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'the server is coming up, draining or has a stage without a live replica',
    fix: 'Retry once /health answers ready; look at the stage the message names.',
  },
  OMNI_REQUEST_TIMEOUT: {
    exitCode: 1,
    httpStatus: 504,
    summary: 'a request ran past --request-timeout',
    fix: 'Raise --request-timeout, or look at the stage and replica the message names.',
  },
  OMNI_SERVE_LISTEN: {
    exitCode: 1,
    httpStatus: 500,
    summary: 'the HTTP server could not listen on its host and port',
    fix: 'Choose a free port with --port, or stop the program that holds it.',
  },
  OMNI_DRAIN_TIMEOUT: {
    exitCode: 1,
    httpStatus: 503,
    summary: 'requests in flight did not finish within --drain-timeout',
    fix: 'Raise --drain-timeout if requests legitimately take that long.',
  },
} as const satisfies Record<`OMNI_${string}`, ErrorEntry>;

/**
 * What the catalogue says about one warning code: when it is emitted and how to make it go away.
 * Warnings never change the exit code.
 */
export interface WarningEntry {
  summary: string;
  fix: string;
}

/** Stable warning codes (`OMNI_WARN_*`) of non-fatal findings; see {@link Diagnostic}. */
export const WARNING_CATALOGUE = {
  OMNI_WARN_YAML: {
    summary: 'the YAML parser noted something it tolerated (an unresolved tag, ...)',
    fix: 'Rewrite the value at the reported position in plain YAML.',
  },
  OMNI_WARN_DEPRECATED_KEY: {
    summary: 'a key upstream still ships but ignores was accepted',
    fix: 'Remove the key (the hint says what replaces it, if anything).',
  },
  OMNI_WARN_POSSIBLE_TYPO: {
    summary: 'a deploy stage key is close to a known key, so it is passed to the engine as an engine arg',
    fix: 'Correct the spelling if you meant the known key the hint names.',
  },
  OMNI_WARN_DEPLOY_TOPOLOGY_KEY: {
    summary:
      'a topology key in a deploy stage of a registered pipeline is passed to the engine and does not change the topology',
    fix: 'Remove the key, or drop `pipeline:` and spell out stage_type, engine_input_source and final_output in every stage.',
  },
  OMNI_WARN_PIPELINE_FROM_FILE_NAME: {
    summary:
      'a deploy file without `pipeline:` or a model selecting one took its pipeline from its file name (`<key>.yaml`, `<key>_<variant>.yaml`, as upstream names them)',
    fix: 'Add `pipeline: NAME` to the file, or pass --pipeline NAME or --model, to choose the pipeline explicitly.',
  },
  OMNI_WARN_STRATEGY_ROUTING: {
    summary: 'a strategy file asks for `routing: random`, which is served round-robin',
    fix: 'Use routing: round_robin or least_queue.',
  },
  OMNI_WARN_UNKNOWN_PLATFORM: {
    summary: 'a `platforms:` section names a platform omnistage never runs on, so it is never applied',
    fix: 'Rename the section to a known platform (cuda, rocm, xpu, npu, cpu) or remove it.',
  },
  OMNI_WARN_PLATFORM_STAGE_UNKNOWN: {
    summary: 'a platform section patches a stage the pipeline does not have; the patch is ignored',
    fix: 'Use a stage_id of the pipeline in the platform patch, or remove it.',
  },
  OMNI_WARN_MODE_UNKNOWN: {
    summary: 'the active mode is not declared in `modes:`; all stages are kept',
    fix: 'Pass one of the declared modes with --mode, or declare the mode.',
  },
  OMNI_WARN_MODE_IGNORED: {
    summary: 'a mode was asked for by name, but the pipeline file declares no `modes` (the CLI refuses this: exit 2)',
    fix: 'Drop the mode, or declare it under `modes:` in the pipeline file.',
  },
  OMNI_WARN_MODE_NO_STAGES: {
    summary: 'the active mode lists stage ids that match no stage; all stages are kept',
    fix: 'List stage ids of this pipeline under the mode.',
  },
  OMNI_WARN_PHYSICAL_DEVICE_IDS: {
    summary:
      "a stage's devices are all outside the visible devices and are used as physical ids (upstream's compatibility rule)",
    fix: "Write devices as logical indices into CUDA_VISIBLE_DEVICES (or the platform's equivalent).",
  },
  OMNI_WARN_DEVICE_DROPPED: {
    summary: "some of a stage's logical devices are outside the visible devices and were dropped",
    fix: 'Use indices below the number of visible devices, or make more devices visible.',
  },
  OMNI_WARN_KV_FLOW_NOT_DRIVEN: {
    summary:
      'an edge between vllm stages uses a vLLM KV connector whose request flow omnistage does not drive (only NixlConnector is driven)',
    fix: 'Use NixlConnector for prefill → decode between vllm stages, or put the proxy of that connector in front of the replicas.',
  },
  OMNI_WARN_CONNECTOR_UNIMPLEMENTED: {
    summary: 'a stage sends over a connector its engine does not implement, so payloads go inline',
    fix: 'Load a plugin that defines the connector, use the shared-memory connector, or use an engine that implements it.',
  },
  OMNI_WARN_REFERENCE_ENGINE: {
    summary: 'a diffusion stage runs on the reference engine (omnistage ships no GPU diffusion engine)',
    fix: 'Set `engine:` on the stage to a diffusion engine plugin to run a real model.',
  },
  OMNI_WARN_MODEL_MISSING: {
    summary: 'no model is given yet; the plan shows <model> in its place',
    fix: 'Set `model:` at the top of the file or pass --model.',
  },
  OMNI_WARN_STAGE_MODEL_OVERRIDDEN: {
    summary: "a stage's engine_args.model is not used: every stage runs the pipeline's model",
    fix: 'Set `model:` at the top of the file; name other weights of the same checkpoint with engine_args.model_subdir.',
  },
  OMNI_WARN_MODEL_SUBDIR_UNRESOLVED: {
    summary: 'model_subdir or tokenizer_subdir could not be resolved against a local model directory and is used as-is',
    fix: 'Point `model` at a local directory, or remove the subdir key.',
  },
  OMNI_WARN_PLUGIN: {
    summary: 'a plugin reported a finding of its own with `ctx.warn(text)`',
    fix: "Follow the plugin's message; the plugin's documentation says more.",
  },
  OMNI_WARN_ENGINE_ARG_UNKNOWN: {
    summary: "an engine arg is not one the stage's engine declares it takes, so it has no effect",
    fix: 'Correct the key (the hint suggests the closest one the engine takes) or remove it.',
  },
  OMNI_WARN_VLLM_FLAG_UNKNOWN: {
    summary: 'an engine arg is not a vllm serve flag omnistage knows and is passed on as a flag',
    fix: 'Check it against `vllm serve --help` (vLLM exits on flags it does not know) and correct or remove it.',
  },
  // Runtime warnings: logged while a pipeline runs (the record's `code`), never a plan diagnostic.
  OMNI_WARN_STOPPING_ON_SIGNAL: {
    summary: 'the command received SIGINT or SIGTERM and stops the pipeline',
    fix: 'Nothing to fix when you stopped it; otherwise find who sent the signal (a supervisor, a terminal closing).',
  },
  OMNI_WARN_PARENT_EXITED: {
    summary:
      'the process that started the command (a supervisor, npx) exited, so the command stops as on SIGHUP (its parent-death guarantee)',
    fix: 'Nothing to fix when its supervisor was stopped; to keep a pipeline up on its own, start it from a service manager (docs/operations.md).',
  },
  OMNI_WARN_NO_API_KEY: {
    summary: '`omnistage serve` listens on an address other hosts can reach without an API key',
    fix: 'Set --api-key (or OMNISTAGE_API_KEY), or listen on 127.0.0.1.',
  },
  OMNI_WARN_STALE_RUN_REAPED: {
    summary:
      'a bring-up removed the run directory and payload files an omnistage killed before its teardown left behind',
    fix: 'Nothing to fix; find out why that omnistage was killed (OOM killer, SIGKILL) if it happens often.',
  },
  OMNI_WARN_CONTROL_REJECTED: {
    summary:
      'the control endpoint refused connections (a wrong token, a malformed or oversized message, a replica of another run)',
    fix: 'If the peer is yours, run it with the same omnistage version and the env omnistage gave it; otherwise block it from the endpoint.',
  },
  OMNI_WARN_LOCK_RELEASE_FAILED: {
    summary: "releasing a replica's device locks failed; they go stale and free themselves after the lock staleness",
    fix: 'Check that the lock directory is writable and not removed while pipelines run.',
  },
  OMNI_WARN_PAYLOAD_RELEASE_FAILED: {
    summary: 'a payload could not be released by its connector; its bytes stay until the run ends',
    fix: "Read the error in the record (the connector's); check the payload directory's filesystem.",
  },
  OMNI_WARN_TEARDOWN_INCOMPLETE: {
    summary: "part of a run's teardown failed (sweeping its payload files, closing its control endpoint)",
    fix: 'Read the error in the record; the next bring-up on the host removes what an ended run left.',
  },
  OMNI_WARN_LISTENER_FAILED: {
    summary: 'an event listener of the application threw; the event still reached the other listeners',
    fix: "Fix the listener named by the event type in the record (a plugin's listener is reported as OMNI_PLUGIN_FAILED).",
  },
  OMNI_WARN_REPLICA_RESTARTING: {
    summary: 'a replica died while serving and is started again (runtime.restart, or an agent restarting its replica)',
    fix: "Read the replica's log for why it died; runtime.restart sets how often it may restart.",
  },
  OMNI_WARN_REPLICA_EXITED: {
    summary: 'a replica of an agent exited; the agent starts it again unless its restart budget is used up',
    fix: "Read the replica's last lines in the agent's log.",
  },
  OMNI_WARN_REPLICA_UNRESPONSIVE: {
    summary:
      'a serving replica stopped answering (stopped process, missing heartbeats, failed readiness checks) and left the rotation',
    fix: "Read the replica's log; if it is only slow, raise runtime.heartbeat_timeout_s or runtime.readiness_failures.",
  },
  OMNI_WARN_REQUEST_RETRIED: {
    summary:
      'a replica died or left the rotation during a request, which is retried once: the stage on another replica, or the whole request when a stage of it streams and nothing reached the caller yet',
    fix: "Nothing to fix for the request; read the replica's log for why it died.",
  },
  OMNI_WARN_LEASE_LOST: {
    summary:
      "a head's or agent's etcd lease was lost (etcd restarted, or the process stalled past the TTL); it registers again",
    fix: 'Check etcd and the network to it; keep the event loop of the head and agents from stalling.',
  },
  OMNI_WARN_REPLICA_REFUSED: {
    summary:
      'the head refused a replica that claimed a stage and replica no agent registered, or with a wrong or old token',
    fix: 'If it is yours, restart its agent with the same --cluster-secret-file; otherwise block its address from the head.',
  },
  OMNI_WARN_REPLICA_ADDRESS_MISMATCH: {
    summary: 'a remote replica connected from another address than its agent advertised',
    fix: "Set the agent's --advertise to the address it dials from, or ignore it behind address translation.",
  },
  OMNI_WARN_REMOTE_ATTACH_FAILED: {
    summary:
      "the head could not attach to an HTTP replica an agent advertised (its readiness URL did not answer, or answered for another model); the agent's replica stays out of rotation",
    fix: "Check that the agent's --advertise address is reachable from the head and that the engine serves the model the stage names.",
  },
  OMNI_WARN_PAYLOADS_LOOPBACK_ONLY: {
    summary:
      'an agent started without --advertise serves its payloads on 127.0.0.1 only: consumers on other hosts cannot fetch what its replicas store',
    fix: 'Start the agent with --advertise ADDR, an address of this host the other hosts reach.',
  },
  OMNI_WARN_PAYLOAD_SERVER: {
    summary:
      "a host's payload server refused or dropped a fetch or release (wrong token, stale or unknown key, size mismatch, deadline)",
    fix: 'The message names the peer and the reason; a wrong token means a host of another cluster or run, a stale key a payload already freed.',
  },
  OMNI_WARN_PAYLOADS_LOST: {
    summary:
      'a host left the cluster (its lease expired) while payloads stored there were still held; requests that needed them fail',
    fix: 'Find why the host left (its agent log, the network to etcd); the requests that named those payloads are retried or fail with the host named.',
  },
  OMNI_WARN_DISCOVERY_WRITE_FAILED: {
    summary: "the head could not record a replica's state in etcd; agents read it later than they should",
    fix: 'Check etcd and the network to it.',
  },
} as const satisfies Record<`OMNI_WARN_${string}`, WarningEntry>;

/** Every warning code; an unknown one does not compile. */
export type WarningCode = keyof typeof WARNING_CATALOGUE;

/** Every error code; an unknown one does not compile. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Where in the pipeline an error happened. All fields are optional; set what is known. */
export interface ErrorContext {
  stage_id?: number;
  stage_idx?: number;
  replica_id?: number;
  phase?: string;
  plugin?: string;
  hook?: string;
  device?: string;
  pid?: number;
  exit_code?: number | null;
  signal?: string | null;
  /** Last log lines of the replica, newest last. */
  last_lines?: string[];
  [key: string]: unknown;
}

/** What an {@link OmniError} carries besides its code and message. */
export interface OmniErrorOptions {
  hint?: string;
  location?: SourceLocation;
  /** Further locations that take part (e.g. the other side of a connector edge). */
  related?: SourceLocation[];
  context?: ErrorContext;
  cause?: unknown;
  /** Overrides the catalogue's exit code (a plugin that failed while planning exits 2, at runtime 1). */
  exitCode?: 1 | 2;
}

/** An error a user sees: a catalogue code, exit code, message, optional YAML location, context and hint. */
export class OmniError extends Error {
  override readonly name = 'OmniError';
  readonly code: ErrorCode;
  readonly exitCode: 1 | 2;
  readonly hint: string | undefined;
  readonly location: SourceLocation | undefined;
  readonly related: SourceLocation[];
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, options: OmniErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = options.exitCode ?? ERROR_CATALOGUE[code].exitCode;
    this.hint = options.hint;
    this.location = options.location;
    this.related = options.related ?? [];
    this.context = options.context ?? {};
  }

  /** JSON shape used by `--events` (`pipeline:failed`) and `--json` outputs. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      hint: this.hint,
      ...(this.location ? { file: this.location.file, line: this.location.line, col: this.location.col } : {}),
      context: this.context,
    };
  }
}

/** True for an {@link OmniError} (also one from another copy of core). */
export function isOmniError(value: unknown): value is OmniError {
  return value instanceof Error && (value as { name?: string }).name === 'OmniError' && 'code' in value;
}

/** `file:line:col`. */
export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

/**
 * Human-readable rendering for the CLI: `file:line:col: error CODE: message`, then the hint and any
 * related locations on indented lines.
 */
export function formatError(err: OmniError): string {
  const where = err.location ? `${formatLocation(err.location)}: ` : '';
  const lines = [`${where}error ${err.code}: ${err.message}`];
  for (const rel of err.related) lines.push(`  see also ${formatLocation(rel)}`);
  if (err.context.last_lines && err.context.last_lines.length > 0) {
    lines.push('  last output of the replica:');
    for (const l of err.context.last_lines) lines.push(`    | ${l}`);
  }
  if (err.hint) lines.push(`  hint: ${err.hint}`);
  return lines.join('\n');
}

/**
 * Wraps anything thrown into an OmniError, keeping OmniErrors as they are. A system error that is
 * the host's fault (ENOSPC, EMFILE, EACCES, ...) becomes `OMNI_ENVIRONMENT`, naming the path and the fix.
 */
export function toOmniError(value: unknown, fallback: ErrorCode = 'OMNI_INTERNAL', context?: ErrorContext): OmniError {
  if (isOmniError(value)) return value;
  const fault = environmentFault(value);
  if (fault) {
    return new OmniError('OMNI_ENVIRONMENT', fault.message, {
      cause: value,
      hint: fault.hint,
      context: { ...context, ...fault.context },
    });
  }
  const message = value instanceof Error ? value.message : String(value);
  return new OmniError(fallback, message, { cause: value, context });
}
