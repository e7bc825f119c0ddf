import type { ConnectorSpec, SourceLocation } from '@omnistage/core';

/**
 * Where one edge of the transfer config was declared. An edge can be declared several times (both
 * sides name a connector, and it is also listed in `edges:` or implied by `engine_input_source`);
 * every declaration is kept, in parse order, so that later messages can point at all of them.
 */
export interface EdgeDeclaration {
  /** Which kind of declaration it was. */
  readonly source: 'output_connectors' | 'input_connectors' | 'edges' | 'engine_input_source';
  /** The configured `stage_id` of the stage that declared it; null for the pipeline's `edges:` list. */
  readonly stage_id: number | null;
  /** Dotted path of the declaration, relative to the stage (or to the pipeline for `edges.N`). */
  readonly path: string;
  /** The named connector this declaration referenced; null for inline specs and implied edges. */
  readonly connector_ref: string | null;
  readonly location: SourceLocation;
}

/** One stage-to-stage edge with its connector. Stage ids are strings, as upstream keys them. */
export interface TransferEdge {
  readonly from: string;
  readonly to: string;
  /** Role-neutral connector spec; the role is injected per stage when a stage view is built. */
  readonly spec: ConnectorSpec;
  /** True when no connector was named and the default shared-memory connector was filled in. */
  readonly auto: boolean;
  /** Every declaration of this edge; the first one is the one whose spec was kept. */
  readonly declarations: readonly EdgeDeclaration[];
}

/**
 * The parsed connector/edge configuration of a pipeline (upstream `OmniTransferConfig`): edges keyed
 * by {@link edgeKey} in insertion order — the order is observable, because "the first incoming
 * edge" decides a stage's connector spec.
 */
export interface OmniTransferConfig {
  readonly edges: ReadonlyMap<string, TransferEdge>;
}

/** Map key of the edge `from → to` (upstream keys a dict by the tuple `(from_str, to_str)`). */
export function edgeKey(from: string | number, to: string | number): string {
  return `${String(from)}->${String(to)}`;
}

/** `(connector_config | null, from_stage | null, to_stage | null)`, as upstream's plan carries it. */
export type OmniKvConnector = [Record<string, unknown> | null, string | null, string | null];
