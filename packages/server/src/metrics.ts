import type { EventBus, OmniEvent } from '@omnistage/core';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Per-stage figures read from the pipeline when /metrics is scraped. */
export interface MetricsSource {
  stageIds(): readonly number[];
  liveReplicas(stageId: number): number;
}

/**
 * The server's Prometheus metrics (own registry, names `omnistage_*`; see docs/serving.md). HTTP
 * figures are recorded by the server; pipeline figures come from the orchestrator's events, so
 * {@link observe} must be attached before bring-up to see the replicas' bring-up durations.
 */
export class ServerMetrics {
  #source: MetricsSource | null = null;
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'omnistage_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['endpoint', 'status'] as const,
    registers: [this.registry],
  });
  readonly streamFailures = new Counter({
    name: 'omnistage_http_stream_failures_total',
    help: 'Streamed answers that failed after their 200 was sent (an error event ended them), by route and error code',
    labelNames: ['endpoint', 'code'] as const,
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'omnistage_request_duration_seconds',
    help: 'End-to-end time of generation requests (received to last byte), by route',
    labelNames: ['endpoint'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly timeToFirstChunk = new Histogram({
    name: 'omnistage_time_to_first_chunk_seconds',
    help: 'Time from receiving a generation request to its first output from the pipeline, by route',
    labelNames: ['endpoint'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'omnistage_requests_in_flight',
    help: 'Generation requests being served now (bounded by --max-inflight)',
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'omnistage_requests_rejected_total',
    help: 'Generation requests refused before reaching the pipeline, by reason (overloaded, draining, not_ready)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly stageDuration = new Histogram({
    name: 'omnistage_stage_duration_seconds',
    help: "Time a stage's replica spent on its part of a request, by stage and outcome (done, failed, aborted)",
    labelNames: ['stage_id', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly stageFirstChunk = new Histogram({
    name: 'omnistage_stage_time_to_first_chunk_seconds',
    help: "Time from a stage's dispatch of a request to its first output chunk, by stage",
    labelNames: ['stage_id'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly stageQueueDepth = new Gauge({
    name: 'omnistage_stage_queue_depth',
    help: "Requests dispatched to a stage's replicas and not finished there, by stage",
    labelNames: ['stage_id'] as const,
    registers: [this.registry],
  });
  readonly replicasUp: Gauge<'stage_id'> = new Gauge({
    name: 'omnistage_replicas_up',
    help: 'Replicas of a stage attached and serving, by stage',
    labelNames: ['stage_id'] as const,
    registers: [this.registry],
    // Read at scrape time: replica liveness is a state, not an event stream.
    collect: () => {
      const s = this.#source;
      if (s) for (const id of s.stageIds()) this.replicasUp.set({ stage_id: String(id) }, s.liveReplicas(id));
    },
  });
  readonly restarts = new Counter({
    name: 'omnistage_replica_restarts_total',
    help: 'Replica restarts after a replica died, by stage',
    labelNames: ['stage_id'] as const,
    registers: [this.registry],
  });
  readonly payloadBytes = new Counter({
    name: 'omnistage_payload_bytes_total',
    help: 'Bytes of payloads stored between stages, by connector',
    labelNames: ['connector'] as const,
    registers: [this.registry],
  });
  readonly payloads = new Counter({
    name: 'omnistage_payloads_total',
    help: 'Payloads stored between stages, by connector',
    labelNames: ['connector'] as const,
    registers: [this.registry],
  });
  readonly bringUp = new Gauge({
    name: 'omnistage_replica_bring_up_seconds',
    help: 'Time a replica took from lock to ready at its last start, by stage and replica',
    labelNames: ['stage_id', 'replica_id'] as const,
    registers: [this.registry],
  });
  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'omnistage_' });
  }

  /** Where replica liveness is read from (once the pipeline is up). */
  setSource(source: MetricsSource): void {
    this.#source = source;
  }

  /** Follows the orchestrator's events; returns the unsubscribe function. */
  observe(events: EventBus): () => void {
    return events.onAny((e) => this.#onEvent(e));
  }

  #onEvent(e: OmniEvent): void {
    switch (e.type) {
      case 'request:dispatched':
        this.stageQueueDepth.inc({ stage_id: String(e.stage_id) });
        break;
      case 'request:stage_end':
        this.stageQueueDepth.dec({ stage_id: String(e.stage_id) });
        this.stageDuration.observe({ stage_id: String(e.stage_id), outcome: e.outcome }, e.duration_ms / 1000);
        break;
      case 'request:first_chunk':
        this.stageFirstChunk.observe({ stage_id: String(e.stage_id) }, e.ms / 1000);
        break;
      case 'replica:restart':
        this.restarts.inc({ stage_id: String(e.stage_id) });
        break;
      case 'replica:ready':
        this.bringUp.set({ stage_id: String(e.stage_id), replica_id: String(e.replica_id) }, e.duration_ms / 1000);
        break;
      case 'payload:stored':
        this.payloads.inc({ connector: e.via });
        this.payloadBytes.inc({ connector: e.via }, e.size);
        break;
      default:
        break;
    }
  }
}
